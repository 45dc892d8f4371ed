#!/usr/bin/env bash
# Fuzzes the code that reads untrusted recordings: builds every target once
# and runs each for SECONDS (default 20), one after the other.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (targets: all by default)
#
# Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh installs
# them). NFT_FUZZ_PROFILE picks the build (below). CARGO_BUILD_JOBS is respected (default 1: these machines have 2
# cores). Extra libFuzzer flags go in NFT_FUZZ_ARGS (e.g. "-runs=1000000",
# which ends a target's run at that many executions if it comes before
# SECONDS).
#
# Corpus: a working corpus per target in fuzz/target/corpus/<target> (new
# inputs are written there, never committed), read together with
# fuzz/seeds/<target> and fuzz/regressions/<target>, which libFuzzer only
# reads. A crash, timeout or out-of-memory is saved under
# fuzz/target/artifacts/<target>/; the script then goes on with the other
# targets and exits 1 at the end, printing each artifact's path. To keep
# one: `cargo +nightly fuzz tmin --sanitizer none --fuzz-dir fuzz <target>
# <artifact>`, then save the minimized input as
# fuzz/regressions/<target>/<short-name> (replayed on stable by
# analyzer/reader/tests/fuzz_regressions.rs).
set -euo pipefail

FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECONDS_EACH="${1:-20}"
shift || true
ALL_TARGETS=(manifest snapshot netlink ipc segment)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

# No sanitizer: the code under test is safe Rust (nft-reader, arrow,
# parquet, serde_json; message.rs) and what is looked for are panics,
# aborts, hangs and memory blow-ups, which need none. ASan would build
# every crate (arrow and parquet are large) a second time with its
# instrumentation and run several times slower, for memory errors that
# safe Rust does not have. Without ASan, libFuzzer's -malloc_limit_mb does
# nothing by itself (it needs a sanitizer's malloc hooks): the targets'
# allocator (fuzz/src/lib.rs) enforces it instead. Debug assertions and
# overflow checks are on (cargo-fuzz's default).
#
# NFT_FUZZ_PROFILE: `release` (the default; optimized, as the long runs:
# about 7 min to build cold on 2 cores, segment at ~1,100 exec/s) or `dev`
# (unoptimized: about 2.5 min cold, segment at ~140 exec/s). `make test`
# uses dev for its short run, to keep CI's time down.
case "${NFT_FUZZ_PROFILE:-release}" in
    release) build=(--release --codegen-units 16); profile=release ;;
    dev) build=(--dev); profile=debug ;;
    *) echo "NFT_FUZZ_PROFILE must be release or dev" >&2; exit 2 ;;
esac
cargo +nightly fuzz build --fuzz-dir "$FUZZ" --sanitizer none "${build[@]}"

BIN="$FUZZ/target/x86_64-unknown-linux-gnu/$profile"
# The segment target writes its recording under TMPDIR: keep it in the
# target dir, and clean it up.
export TMPDIR="$FUZZ/target/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT

failed=()
for target in "${TARGETS[@]}"; do
    corpus="$FUZZ/target/corpus/$target"
    artifacts="$FUZZ/target/artifacts/$target"
    log="$FUZZ/target/logs/$target.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    dirs=("$corpus")
    for extra in "$FUZZ/seeds/$target" "$FUZZ/regressions/$target"; do
        [ -d "$extra" ] && dirs+=("$extra")
    done
    before="$(ls -A "$artifacts" | wc -l)"
    echo "== $target: ${SECONDS_EACH}s (log: $log)"
    status=0
    # shellcheck disable=SC2086 # NFT_FUZZ_ARGS is a list of flags
    "$BIN/$target" \
        -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -artifact_prefix="$artifacts/" \
        -print_final_stats=1 \
        ${NFT_FUZZ_ARGS:-} \
        "${dirs[@]}" >"$log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" \
        | sed 's/^/   /' || true
    after="$(ls -A "$artifacts" | wc -l)"
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        echo "!! $target failed (exit $status); last lines of $log:"
        tail -n 25 "$log" | sed 's/^/   /'
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo
    echo "crashes found in: ${failed[*]}"
    for target in "${failed[@]}"; do
        grep -h -o 'Test unit written to .*' "$FUZZ/target/logs/$target.log" \
            | sed "s/^/   $target: /" || true
    done
    exit 1
fi
echo "no crash found"
