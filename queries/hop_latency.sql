-- How long does a packet take from one probe to the next? Latency of each
-- consecutive pair of probes on the same skb (a hop), as percentiles in
-- microseconds. Pairs more than $timeout_ns apart are not hops.
WITH hops AS (
    SELECT recording,
           LAG(probe) OVER w AS from_probe,
           probe AS to_probe,
           CAST(ts_ns AS BIGINT) - CAST(LAG(ts_ns) OVER w AS BIGINT) AS gap_ns
    FROM events
    WHERE kind IN ('function', 'tracepoint')
    WINDOW w AS (PARTITION BY recording, skb ORDER BY ts_ns)
)
SELECT recording,
       from_probe,
       to_probe,
       count(*) AS hops,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_ns) / 1000.0, 3) AS p50_us,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY gap_ns) / 1000.0, 3) AS p99_us,
       round(max(gap_ns) / 1000.0, 3) AS max_us
FROM hops
WHERE from_probe IS NOT NULL AND gap_ns <= $timeout_ns
GROUP BY recording, from_probe, to_probe
ORDER BY hops DESC, from_probe, to_probe
