#!/usr/bin/env bash
# The built-in demo. Today it shows what this kernel allows; recording and
# analysing a demo scenario come with the recorder and analyzer issues.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release

echo "== nft-recorder check: what this kernel allows"
"$BIN/nft-recorder" check || true
echo
echo "== not built yet"
echo "  nft-recorder record     (recorder part 1: tracepoints + nftrace -> Parquet)"
echo "  nft-recorder discover   (recorder part 2: BTF function discovery)"
echo "  nft-analyzer traces|sql|stats|diff   (analyzer issues)"
echo "The demo will record a firewall scenario in network namespaces and show its traces."
