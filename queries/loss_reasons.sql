-- Why were events lost? Lost events per reason (ring buffer full, ...),
-- per recording; `losses` breaks them down by probe and CPU.
SELECT recording, reason, sum(count) AS lost
FROM losses
GROUP BY recording, reason
ORDER BY recording, lost DESC, reason
