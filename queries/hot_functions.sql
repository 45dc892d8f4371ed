-- Which kernel functions and tracepoints handled the most packets? Events
-- and distinct skbs per probe.
SELECT recording,
       kind,
       probe,
       count(*) AS events,
       count(DISTINCT skb) AS skbs
FROM events
WHERE kind IN ('function', 'tracepoint')
GROUP BY recording, kind, probe
ORDER BY events DESC, probe
