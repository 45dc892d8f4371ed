#!/bin/bash
# The suite one guest boot runs (tests/e2e/vm.rs reads what it leaves in
# /out): the capability check, the recorder's tracepoint + nftrace scenario
# in two network namespaces, live events and the session API (api.sh), the
# nft hooks' forwarding scenario
# (forward.sh), function tracing with tracking, and at scale and through
# NAT (multi.sh). Exits non-zero on the first failure.
set -euo pipefail
# Seconds since the suite began, on each phase line: where a slow guest spends its time.
export SUITE_T0=${SUITE_T0:-$EPOCHSECONDS}

nft-recorder check > /out/check.txt
echo "suite: check done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
cat /out/check.txt

ip netns add a; ip netns add b
ip link add veth-a netns a type veth peer name veth-b netns b
ip -n a addr add 10.9.0.1/24 dev veth-a; ip -n a link set veth-a up; ip -n a link set lo up
ip -n b addr add 10.9.0.2/24 dev veth-b; ip -n b link set veth-b up; ip -n b link set lo up
ip netns exec b nft -f - <<'NFT'
table inet fw {
  chain input {
    type filter hook input priority 0; policy accept;
    ip protocol icmp counter accept
    tcp dport 9 counter drop
  }
}
NFT

# `nft monitor trace` in b: the oracle for the nft hook's verdicts (issue 6).
# The packets are chosen by a pcap-filter expression (issue 20), so every
# source (tracepoints, functions, nft hooks, nftrace) runs it here.
ip netns exec b nft -a monitor trace > /out/monitor.txt &
monitor=$!
nft-recorder record -o /out/rec --netns b --filter 'host 10.9.0.1' --duration 8 &
rec=$!
while [ ! -e /out/rec/recording.json ]; do sleep 0.2; done
ip netns exec a ping -q -c 3 -i 0.2 10.9.0.2
ip netns exec a nc -z -w 1 10.9.0.2 9 || true
wait $rec
sleep 0.3; kill $monitor || true
ip netns exec b nft -j list table inet fw > /out/counters.json
echo "suite: done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"

bash /work/guest/api.sh
bash /work/guest/forward.sh

# Function tracing (issue 5). The marker table sets mark 7 on ICMP in b's
# prerouting, so `--mark 0` matches an echo request at ip_rcv but no longer
# at icmp_rcv: only skb tracking reports it there. kprobe with and
# without tracking (the default recording above was fentry).
ip netns exec b nft -f - <<'NFT'
table ip marker {
  chain pre {
    type filter hook prerouting priority -150; policy accept;
    ip protocol icmp meta mark set 7
  }
}
NFT
record_ping() { # DIR ARGS...
  local dir=$1; shift
  nft-recorder record -o "$dir" --netns b --mark 0 --no-nftrace --duration 6 "$@" &
  local rec=$!
  while [ ! -e "$dir/recording.json" ]; do sleep 0.2; done
  ip netns exec a ping -q -c 3 -i 0.2 10.9.0.2
  wait $rec
}
record_ping /out/kprobe --backend kprobe
record_ping /out/untracked --backend kprobe --track-skbs 0
nft-recorder discover > /out/discover.txt
echo "suite: functions done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"

bash /work/guest/multi.sh

