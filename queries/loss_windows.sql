-- When were events lost, next to the traffic? For each second of the
-- recording (counted from its first event) in which events were lost: the
-- events recorded in that second and the events lost (a loss window is
-- counted in the second it ends; the recorder samples them once a second).
-- An empty result means nothing was lost.
WITH lost AS (
    SELECT recording,
           CAST(floor(window_end_ns / 1e9) AS BIGINT) AS sec,
           sum(count) AS lost
    FROM losses
    GROUP BY recording, CAST(floor(window_end_ns / 1e9) AS BIGINT)
), recorded AS (
    SELECT recording,
           CAST(floor(ts_ns / 1e9) AS BIGINT) AS sec,
           count(*) AS recorded
    FROM events
    GROUP BY recording, CAST(floor(ts_ns / 1e9) AS BIGINT)
), first AS (
    SELECT recording, min(sec) AS first_sec FROM recorded GROUP BY recording
)
SELECT l.recording,
       l.sec - f.first_sec AS second,
       coalesce(r.recorded, 0) AS recorded,
       l.lost
FROM lost l
JOIN first f ON f.recording = l.recording
LEFT JOIN recorded r ON r.recording = l.recording AND r.sec = l.sec
ORDER BY l.recording, second
