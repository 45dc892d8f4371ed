#!/usr/bin/env bash
# Stop time under a flood: a ping flood between two namespaces that goes on
# past the end, `record --backend tracepoint --netns <server>` stopped by
# SIGINT after 3 s of recording, RUNS times (default 10). Prints each stop
# (SIGINT to exit) and the median, and the events and losses per run.
# Usage: scripts/bench-stop.sh [RUNS]   (as root; after `cargo build`)
# NFT_RECORDER picks the binary (default target/debug/nft-recorder, whose
# hot crates are optimised: Cargo.toml).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
bin=${NFT_RECORDER:-$root/target/debug/nft-recorder}
a=ntbench-a$$ b=ntbench-b$$ work=$(mktemp -d)
cleanup() { pkill -f "ping -f -q 10.231.0.2" 2>/dev/null || true; ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip link add veth-a netns "$a" type veth peer name veth-b netns "$b"
ip -n "$a" addr add 10.231.0.1/24 dev veth-a; ip -n "$b" addr add 10.231.0.2/24 dev veth-b
for n in "$a" "$b"; do ip -n "$n" link set lo up; done
ip -n "$a" link set veth-a up; ip -n "$b" link set veth-b up
ip netns exec "$a" ping -f -q 10.231.0.2 >/dev/null 2>&1 &
stops=()
for i in $(seq "$runs"); do
  dir=$work/rec-$i
  "$bin" record -o "$dir" --backend tracepoint --netns "$b" 2>"$work/err-$i" &
  pid=$!
  until [ -e "$dir/recording.json" ]; do sleep 0.05; done
  sleep 3
  t0=$(date +%s.%N); kill -INT "$pid"; wait "$pid"; t1=$(date +%s.%N)
  s=$(echo "$t1 - $t0" | bc)
  stops+=("$s")
  python3 - "$dir/recording.json" "$s" "$i" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"run {sys.argv[3]:>2}: stop {float(sys.argv[2]):6.3f} s  events {m['events']:>9}  lost {m['lost_events']:>8}  end {m['end']}")
PY
  if ip netns exec "$b" nft list tables | grep -q nft_tracer; then echo "table left behind" >&2; exit 1; fi
  rm -rf "$dir"
done
printf '%s\n' "${stops[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "median stop under a flood: %.3f s over %d runs (min %.3f, max %.3f)\n", m, NR, a[1], a[NR]}'
