-- What did each source record? Events and distinct skbs per event kind
-- (tracepoint, function, nft), and the nftrace messages, per recording.
SELECT recording, kind AS source, count(*) AS events, count(DISTINCT skb) AS skbs
FROM events
GROUP BY recording, kind
UNION ALL
SELECT recording, 'nftrace' AS source, count(*) AS events, NULL AS skbs
FROM nftrace
GROUP BY recording
ORDER BY recording, events DESC, source
