#!/usr/bin/env bash
# The built-in demo: what this kernel allows, then a real recording of a
# small firewall scenario in two network namespaces, summarised.
# Run as root (make demo builds the release binaries first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
A=ntdemo-a; B=ntdemo-b; REC=${REC:-/tmp/nft-tracer-demo}

cleanup() { ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true; }
trap cleanup EXIT
cleanup

echo "== nft-recorder check: what this kernel allows"
"$BIN/nft-recorder" check || true

echo
echo "== two namespaces, a firewall on b that drops TCP port 9"
ip netns add "$A"; ip netns add "$B"
ip link add veth-a netns "$A" type veth peer name veth-b netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev veth-a; ip -n "$A" link set veth-a up; ip -n "$A" link set lo up
ip -n "$B" addr add 10.77.0.2/24 dev veth-b; ip -n "$B" link set veth-b up; ip -n "$B" link set lo up
ip netns exec "$B" nft 'add table inet demo; add chain inet demo input { type filter hook input priority 0; policy accept; }; add rule inet demo input tcp dport 9 counter drop'

echo
echo "== recording 4 s into $REC (ping, TCP to a dropped port, UDP)"
rm -rf "$REC"
"$BIN/nft-recorder" record -o "$REC" --netns "$B" --host 10.77.0.1 --duration 4 &
rec=$!
while [[ ! -e $REC/recording.json ]]; do sleep 0.1; done
ip netns exec "$A" ping -q -c 3 -i 0.2 10.77.0.2 >/dev/null
ip netns exec "$A" nc -z -w 1 10.77.0.2 9 || true
ip netns exec "$A" bash -c 'echo hi > /dev/udp/10.77.0.2/5353' || true
wait "$rec"

echo
echo "== summary (DuckDB over the Parquet files; nft-analyzer comes next)"
python3 - "$REC" <<'PY'
import duckdb, sys
rec = sys.argv[1]
ev = f"read_parquet('{rec}/events-*.parquet')"
print(duckdb.sql(f"SELECT probe, count(*) AS events FROM {ev} GROUP BY probe ORDER BY events DESC"))
print(duckdb.sql(f"""SELECT drop_reason, location_sym, l4_proto, dport, count(*) AS drops
                      FROM {ev} WHERE drop_reason IS NOT NULL GROUP BY ALL ORDER BY drops DESC"""))
print(duckdb.sql(f"""SELECT trace_id, chain, type, rule_handle, coalesce(verdict, policy) AS verdict,
                             l4_proto, dport FROM read_parquet('{rec}/nftrace-*.parquet')
                      ORDER BY ts_ns"""))
print(duckdb.sql(f"SELECT events, nftrace_events, lost_events, \"end\", ended_cleanly FROM read_json('{rec}/recording.json')"))
PY
