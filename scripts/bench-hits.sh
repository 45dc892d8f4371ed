#!/usr/bin/env bash
# Per-hit cost of each function backend in the QEMU harness (TCG inflates
# absolute times: compare the backends as ratios within one run), from the
# kernel's bpf_stats during a ping flood, `record --mode full` on the
# receiving namespace. Usage: scripts/bench-hits.sh [KERNEL] [BACKENDS] [SECONDS]
#   e.g. scripts/bench-hits.sh 6.12 "kprobe kprobe-multi fentry" 5
# Needs `cargo build` first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernel=${1:-6.12}
backends=${2:-kprobe kprobe-multi fentry}
seconds=${3:-5}
export NFT_BIN_DIR=${NFT_BIN_DIR:-$root/target/debug}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$root/tests/vm/run" --kernel "$kernel" --out "$out" --timeout 1800 -- \
  bash /work/guest/hit-bench.sh "$backends" "$seconds" >&2
python3 - "$kernel" "$out" $backends <<'PY'
import json, pathlib, sys
kernel, out, backends = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
prefixes = {"kprobe": "kprobe_skb_", "kprobe-multi": "kpm_skb_", "fentry": "fentry_skb_"}
print(f"{'kernel':6} {'backend':13} {'functions':>9} {'events':>10} {'lost':>6} {'runs':>10} {'ns/run':>8} {'tp ns/run':>9}")
for b in backends:
    m = json.loads((out / f"hits-{b}" / "recording.json").read_text())
    progs = json.loads((out / f"hits-{b}.progs.json").read_text())
    def total(pred):
        runs = sum(p.get("run_cnt", 0) for p in progs if pred(p.get("name", "")))
        ns = sum(p.get("run_time_ns", 0) for p in progs if pred(p.get("name", "")))
        return runs, ns / max(runs, 1)
    runs, per = total(lambda n: n.startswith(prefixes[b]))
    _, tp = total(lambda n: n.startswith("tp_a"))
    print(f"{kernel:6} {m['backend']:13} {m['functions_attached']:>9} {m['events']:>10} "
          f"{m['lost_events']:>6} {runs:>10} {per:>8.0f} {tp:>9.0f}")
PY
