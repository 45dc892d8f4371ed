#!/usr/bin/env bash
# The built-in demo: what this kernel allows, then a real recording of a
# small firewall scenario in two network namespaces, summarised.
# Run as root (make demo builds the release binaries first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
A=ntdemo-a; B=ntdemo-b; REC=${REC:-/tmp/nft-tracer-demo}

cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap cleanup EXIT
cleanup

echo "== nft-recorder check: what this kernel allows"
"$BIN/nft-recorder" check || true

echo
echo "== two namespaces, a firewall on b: ICMP via a sub-chain, TCP 9 dropped by a verdict map, UDP 5353 rejected"
ip netns add "$A"; ip netns add "$B"
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev veth-a; ip -n "$A" link set veth-a up; ip -n "$A" link set lo up
ip -n "$B" addr add 10.77.0.2/24 dev veth-b; ip -n "$B" link set veth-b up; ip -n "$B" link set lo up
ip netns exec "$B" nft -f scripts/firewall.nft

echo
echo "== recording 4 s into $REC (ping, TCP to a dropped port, UDP to a rejected one)"
rm -rf "$REC"
"$BIN/nft-recorder" record -o "$REC" --netns "$A" --netns "$B" --host 10.77.0.1 --duration 4 &
rec=$!
while [[ ! -e $REC/recording.json ]]; do sleep 0.1; done
ip netns exec "$A" ping -q -c 3 -i 0.2 10.77.0.2 >/dev/null
ip netns exec "$A" nc -z -w 1 10.77.0.2 9 || true
ip netns exec "$A" bash -c 'echo hi > /dev/udp/10.77.0.2/5353' || true
wait "$rec"

echo
echo "== nft-analyzer stats $REC"
"$BIN/nft-analyzer" stats "$REC"
echo
echo "== nft-analyzer traces $REC (one line per packet)"
"$BIN/nft-analyzer" traces "$REC"
echo
echo "== nft-analyzer sql $REC --query rule_verdicts"
"$BIN/nft-analyzer" sql "$REC" --query rule_verdicts
echo
echo "== nft-analyzer traces $REC --verdict drop --format json (the dropped packets, in full)"
"$BIN/nft-analyzer" traces "$REC" --verdict drop --format json

echo
echo "== nft-analyzer report $REC -o $REC.html (the pictures: open it in a browser, offline)"
"$BIN/nft-analyzer" report "$REC" -o "$REC.html"
