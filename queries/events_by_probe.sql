-- Which probes fired, and how often? Events per probe (function,
-- tracepoint or nft hook), per recording.
SELECT recording, probe, count(*) AS events
FROM events
GROUP BY recording, probe
ORDER BY recording, events DESC, probe
