#!/usr/bin/env bash
# Attach/detach time for 30, 500 and all kernel functions per backend, in
# the QEMU harness on Debian 6.1 and 6.12 (TCG: absolute times are
# inflated, so the per-function cost is printed too; compare backends as
# ratios within one run).
# Usage: scripts/bench-attach.sh [KERNELS] [COUNTS] [BACKENDS]
#   e.g. scripts/bench-attach.sh "6.12" "30 500 0" "kprobe kprobe-multi fentry auto"
# Prints one line per run, the functions that did not attach with the
# reason, and how many each backend took (auto: fentry, kprobe for modules).
# Needs `cargo build` first (the guest runs target/debug/nft-recorder unless
# NFT_BIN_DIR says otherwise).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernels=${1:-6.1 6.12}
counts=${2:-30 500 0}
backends=${3:-kprobe fentry}
export NFT_BIN_DIR=${NFT_BIN_DIR:-$root/target/debug}
for k in $kernels; do
  out=$(mktemp -d)
  "$root/tests/vm/run" --kernel "$k" --out "$out" --timeout 7200 -- \
    bash /work/guest/attach-bench.sh "$counts" "$backends" >&2
  python3 - "$k" "$out" <<'PY'
import json, pathlib, sys
kernel, out = sys.argv[1], pathlib.Path(sys.argv[2])
for d in sorted(out.glob("bench-*/recording.json")):
    m = json.loads(d.read_text())
    n = max(m["functions_attached"], 1)
    print(f"{kernel:5} {m['backend']:13} requested {m['functions_requested']:5} "
          f"attached {m['functions_attached']:5}  attach {m['attach_seconds']:8.2f} s "
          f"({1000 * m['attach_seconds'] / n:7.1f} ms/function)  "
          f"detach {m['detach_seconds']:7.2f} s ({1000 * m['detach_seconds'] / n:6.1f} ms/function)")
    by = {}
    for a in m["attach_plan"]:
        if a.get("backend"):
            by[a["backend"]] = by.get(a["backend"], 0) + 1
        elif not a["attached"] and ":" not in a["probe"]:
            why = (a["error"] or "?").split(": ")[-1][:100]
            print(f"      not attached: {a['probe']}: {why}")
    print(f"      by backend: {by}")
PY
  rm -rf "$out"
done
