-- What was lost while recording? Events that could not be delivered, per
-- probe, CPU and reason, with the time span they cover; an empty result
-- means nothing was lost.
SELECT l.recording,
       coalesce(p.name, 'probe#' || CAST(l.probe_id AS VARCHAR)) AS probe,
       l.cpu,
       l.reason,
       sum(l.count) AS lost,
       min(l.window_start_ns) AS first_window_ns,
       max(l.window_end_ns) AS last_window_ns
FROM losses l
LEFT JOIN probes p ON p.recording = l.recording AND p.probe_id = l.probe_id
GROUP BY l.recording, p.name, l.probe_id, l.cpu, l.reason
ORDER BY lost DESC, probe, l.cpu
