#!/usr/bin/env bash
# The load benchmark (tests/e2e/load_bench.rs): per-hit cost of the
# recording programs against yardstick programs on the same tracepoint in
# the same run, iperf3 throughput while recording as ratios to interleaved
# runs without, and events offered/recorded/lost by packet rate (UDP at
# fixed rates, then a 60 s ping flood), with bpftrace beside it on the same
# tracepoint and traffic. About 5 minutes.
# Usage: scripts/bench-load.sh   (as root, after scripts/setup.sh)
# NFT_LOAD_ROUNDS (3), NFT_LOAD_SECONDS (5), NFT_FLOOD_SECONDS (60) size it;
# NFT_LOAD_PARTS (1234) picks parts: 1 per-hit (with and without --filter),
# 2 peers, 3 iperf3, 4 losses.
set -euo pipefail
cd "$(dirname "$0")/.."
# The peer it compares with (Debian's bpftrace 0.17); only this benchmark
# needs it, so it is not in setup.sh.
command -v bpftrace > /dev/null || apt-get install -y -q bpftrace
cargo build --locked
exec cargo test --locked -p nft-tests -- --ignored load_bench --nocapture --test-threads 1
