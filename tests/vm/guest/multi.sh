#!/bin/bash
# Function tracing at scale and through NAT (issue 5), run by suite.sh after
# its own scenarios (namespaces a and b; ICMP marked 7 in b's prerouting):
# - `--mode multi --max-functions 300` with each backend in $MULTI_BACKENDS
#   during ping and TCP from a to b, with noise in b the filter must cut;
# - an echo request DNATed in b (10.9.7.7 -> 10.9.0.2), recorded with
#   `--dst-ip 10.9.7.7`: past the NAT only skb tracking still reports it.
# Leaves /out/multi-<backend> and /out/nat for tests/e2e/vm_multi.rs.
set -euo pipefail

record_multi() { # BACKEND
  local dir=/out/multi-$1
  nft-recorder record -o "$dir" --netns b --host 10.9.0.1 --no-nftrace \
    --mode multi --max-functions 300 --backend "$1" --duration 5 &
  local rec=$!
  while [ ! -e "$dir/recording.json" ]; do kill -0 $rec; sleep 0.2; done
  ip netns exec b ping -q -c 2 -i 0.2 127.0.0.1 > /dev/null   # noise
  ip netns exec a ping -q -c 2 -i 0.2 10.9.0.2
  ip netns exec a nc -z -w 1 10.9.0.2 22 || true              # b resets
  wait $rec
}
for backend in ${MULTI_BACKENDS:-auto kprobe}; do
  start=$SECONDS
  record_multi "$backend"
  echo "multi: $backend done in $(( SECONDS - start )) s"
done

ip netns exec b nft -f - <<'NFT'
table ip nat {
  chain pre {
    type nat hook prerouting priority -100; policy accept;
    ip daddr 10.9.7.7 dnat to 10.9.0.2
  }
}
NFT
ip -n a route add 10.9.7.7/32 via 10.9.0.2
nft-recorder record -o /out/nat --netns b --dst-ip 10.9.7.7 --no-nftrace \
  --backend kprobe --duration 5 &
rec=$!
while [ ! -e /out/nat/recording.json ]; do kill -0 $rec; sleep 0.2; done
ip netns exec a ping -q -c 2 -i 0.2 10.9.7.7
wait $rec
echo "multi: done"
