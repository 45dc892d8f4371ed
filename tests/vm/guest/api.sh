#!/bin/bash
# Live and over the API (issue 18), run by suite.sh while b's `inet fw`
# table drops TCP to port 9:
# - `record --live --mode nft` (the nft hooks, no functions): the verdicts appear live, one line
#   per rule verdict (/out/live.txt, recording /out/live);
# - where kprobe.multi works, the user guide's multi-mode session over
#   `nft-recorder serve`, started and stopped with curl, with ICMP between
#   them (/out/api-start.json, /out/api-stop.json, recording under
#   /out/api/).
set -euo pipefail
# Seconds since the suite began, on each phase line: where a slow guest spends its time.
export SUITE_T0=${SUITE_T0:-$EPOCHSECONDS}

nft-recorder record -o /out/live --netns b --live --mode nft --filter 'tcp dst port 9' \
  --duration 4 > /out/live.txt &
rec=$!
while [ ! -e /out/live/recording.json ]; do kill -0 $rec; sleep 0.2; done
for i in 1 2; do ip netns exec a nc -z -w 1 10.9.0.2 9 || true; done
ip netns exec a ping -q -c 2 -i 0.2 10.9.0.2 > /dev/null
wait $rec
echo "api: live done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"

grep -q '^kprobe.multi *yes' /out/check.txt || { echo "api: no kprobe.multi, no multi session"; exit 0; }
nft-recorder serve --listen 127.0.0.1:5000 --data /out/api &
srv=$!
api=http://127.0.0.1:5000/api
until [ -s /out/api/api-token ] && curl -sf -H "Authorization: Bearer $(cat /out/api/api-token)" "$api/status" > /dev/null; do
  kill -0 $srv; sleep 0.2
done
auth="Authorization: Bearer $(cat /out/api/api-token)"
curl -sf -H "$auth" -X POST "$api/sessions" \
  -d '{"session_id": "multi_trace_001", "mode": "multi", "max_functions": 500, "pcap_filter": "icmp", "netns": ["b"], "no_nftrace": true}' \
  > /out/api-start.json
ip netns exec a ping -q -c 3 -i 0.2 10.9.0.2 > /dev/null
curl -sf -H "$auth" -X DELETE "$api/sessions/multi_trace_001" > /out/api-stop.json
kill -TERM $srv; wait $srv
echo "api: done (at $(( EPOCHSECONDS - SUITE_T0 )) s)"
