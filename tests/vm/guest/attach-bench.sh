#!/bin/bash
# Attach and detach time for N kernel functions, per backend (issue 5's
# figures; scripts/bench-attach.sh runs this in each guest kernel and prints
# the table). Each recording lasts 1 s with one tracepoint and no nftrace, so
# the manifest's attach_seconds is the functions' cost.
# Usage: attach-bench.sh "30 500 0" "kprobe fentry"   (0 = all functions)
set -euo pipefail
counts=${1:-30 500 0}
backends=${2:-kprobe fentry}
for backend in $backends; do
  for n in $counts; do
    dir=/out/bench-$backend-$n
    nft-recorder record -o "$dir" --mode multi --max-functions "$n" --backend "$backend" \
      --tracepoint kfree_skb --no-nftrace --duration 1 2> "$dir.log" || { cat "$dir.log"; exit 1; }
    echo "$backend $n: done"
  done
done
echo "attach-bench: done"
