-- Where and why were packets dropped? Drops by reason and kernel location
-- (skb:kfree_skb), with the protocols and destination ports they hit.
SELECT recording,
       drop_reason,
       location_sym,
       count(*) AS drops,
       count(DISTINCT skb) AS skbs,
       string_agg(DISTINCT CAST(l4_proto AS VARCHAR) || '/' || coalesce(CAST(dport AS VARCHAR), '-'), ' ') AS proto_dports
FROM events
WHERE drop_reason IS NOT NULL
GROUP BY recording, drop_reason, location_sym
ORDER BY drops DESC, drop_reason, location_sym
