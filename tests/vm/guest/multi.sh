#!/bin/bash
# Function tracing at scale and through NAT (issue 5), run by suite.sh after
# its own scenarios (namespaces a and b; ICMP marked 7 in b's prerouting):
# - `--mode multi --max-functions 300` with each backend in $MULTI_BACKENDS
#   (auto and kprobe; where kprobe.multi works, auto is kprobe.multi and
#   fentry replaces kprobe, with 100 functions: fentry and kprobe at 300 are
#   the 6.1 guest's, and under TCG each fentry costs over a second) during
#   ping and TCP from a to b, with noise in b the filter must cut;
# - kprobe.multi (issue 19): where the kernel has it, every function of an
#   unfiltered BTF list (`discover --btf`, so some ftrace cannot take),
#   attached and detached; where it has not, `--backend kprobe-multi`
#   refused before anything is attached;
# - `--mode full --filter 'icmp and host 10.9.0.1'` (issue 20) during ping,
#   UDP and TCP from a to b and noise in b: function events of the matching
#   packets only;
# - an echo request DNATed in b (10.9.7.7 -> 10.9.0.2), recorded with
#   `--dst-ip 10.9.7.7`: past the NAT only skb tracking still reports it.
# Leaves /out/multi-<backend>, /out/kpm-all or /out/kpm-refused.txt,
# /out/pcap-full and /out/nat for tests/e2e/vm_multi.rs.
set -euo pipefail
# Seconds since the suite began, on each phase line: where a slow guest spends its time.
export SUITE_T0=${SUITE_T0:-$EPOCHSECONDS}

record_multi() { # BACKEND FUNCTIONS
  local dir=/out/multi-$1
  nft-recorder record -o "$dir" --netns b --host 10.9.0.1 --no-nftrace \
    --mode multi --max-functions "$2" --backend "$1" --duration 5 &
  local rec=$!
  while [ ! -e "$dir/recording.json" ]; do kill -0 $rec; sleep 0.2; done
  ip netns exec b ping -q -c 2 -i 0.2 127.0.0.1 > /dev/null   # noise
  ip netns exec a ping -q -c 2 -i 0.2 10.9.0.2
  ip netns exec a nc -z -w 1 10.9.0.2 22 || true              # b resets
  wait $rec
}
if grep -q '^kprobe.multi *yes' /out/check.txt; then kpm=1; else kpm=0; fi
default_backends="auto kprobe"
[ $kpm = 1 ] && default_backends="auto fentry"
for backend in ${MULTI_BACKENDS:-$default_backends}; do
  start=$SECONDS
  functions=300
  [ $kpm = 1 ] && [ "$backend" = fentry ] && functions=100
  record_multi "$backend" "$functions"
  echo "multi: $backend done in $(( SECONDS - start )) s (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
done

if [ $kpm = 1 ]; then
  nft-recorder discover --btf /sys/kernel/btf/vmlinux --output /tmp/all-btf.json > /dev/null
  start=$SECONDS
  nft-recorder record -o /out/kpm-all --functions /tmp/all-btf.json --mode multi \
    --max-functions 0 --backend kprobe-multi --no-nftrace --netns b --duration 2
  echo "multi: kprobe-multi, every function, done in $(( SECONDS - start )) s (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
else
  if nft-recorder record -o /out/kpm-refused --backend kprobe-multi --mode multi \
      --max-functions 50 --duration 2 2> /out/kpm-refused.txt; then
    echo "multi: --backend kprobe-multi should have been refused"; exit 1
  fi
  cat /out/kpm-refused.txt
fi

# kprobe: the filter runs the same in every backend, and 35 fentry
# trampolines cost a minute under TCG.
nft-recorder record -o /out/pcap-full --netns b --no-nftrace --mode full --backend kprobe \
  --filter 'icmp and host 10.9.0.1' --duration 5 &
rec=$!
while [ ! -e /out/pcap-full/recording.json ]; do kill -0 $rec; sleep 0.2; done
ip netns exec b ping -q -c 2 -i 0.2 127.0.0.1 > /dev/null    # noise
ip netns exec a ping -q -c 3 -i 0.2 10.9.0.2
for i in 1 2 3; do ip netns exec a bash -c 'echo x > /dev/udp/10.9.0.2/53'; done
ip netns exec a nc -z -w 1 10.9.0.2 22 || true
wait $rec
echo "multi: --filter done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"

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
echo "multi: done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
