-- How many verdicts of each kind, from each source? Rule and chain
-- verdicts (the verdicts view) per source (ebpf hooks, nftrace) and verdict.
SELECT recording, source, verdict, count(*) AS count
FROM verdicts
GROUP BY recording, source, verdict
ORDER BY recording, count DESC, source, verdict
