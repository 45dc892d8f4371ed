-- Where and why were packets dropped? Drops by reason and kernel location
-- (skb:kfree_skb), with how many flows and destination ports they hit.
SELECT recording,
       drop_reason,
       location_sym,
       count(*) AS drops,
       count(DISTINCT skb) AS skbs,
       count(DISTINCT concat(saddr, ' ', daddr, ' ', l4_proto, ' ', sport, ' ', dport)) AS flows,
       count(DISTINCT dport) AS dports
FROM events
WHERE drop_reason IS NOT NULL
GROUP BY recording, drop_reason, location_sym
ORDER BY drops DESC, drop_reason, location_sym
