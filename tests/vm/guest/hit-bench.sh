#!/bin/bash
# Per-hit cost of each function backend (issues 19 and 25): with
# kernel.bpf_stats_enabled=1, `record --mode full --backend B` on b while a
# ping flood runs from a, then the kernel's counters of every loaded
# program saved for the host (scripts/bench-hits.sh prints ns per run).
# Usage: hit-bench.sh "kprobe kprobe-multi fentry" SECONDS
set -euo pipefail
backends=${1:-kprobe kprobe-multi fentry}
seconds=${2:-5}
ip netns add a; ip netns add b
ip link add veth-a netns a type veth peer name veth-b netns b
ip -n a addr add 10.9.0.1/24 dev veth-a; ip -n a link set veth-a up; ip -n a link set lo up
ip -n b addr add 10.9.0.2/24 dev veth-b; ip -n b link set veth-b up; ip -n b link set lo up
sysctl -q kernel.bpf_stats_enabled=1
for backend in $backends; do
  dir=/out/hits-$backend
  nft-recorder record -o "$dir" --netns b --no-nftrace --mode full --backend "$backend" 2> "$dir.log" &
  rec=$!
  while [ ! -e "$dir/recording.json" ]; do kill -0 $rec; sleep 0.2; done
  ip netns exec a ping -f -q -w "$seconds" 10.9.0.2 > "$dir.ping" || true
  bpftool prog show -j > "$dir.progs.json"
  kill -INT $rec; wait $rec
  echo "hit-bench: $backend done"
done
echo "hit-bench: done"
