-- Which flows did the recording see? Packets (distinct skbs), events
-- and drops per L4 protocol and 5-tuple, with first and last time seen.
SELECT recording,
       l4_proto,
       saddr,
       sport,
       daddr,
       dport,
       count(DISTINCT skb) AS skbs,
       count(*) AS events,
       count(drop_reason) AS drops,
       min(ts_ns) AS first_ns,
       max(ts_ns) AS last_ns
FROM events
WHERE ip_version IS NOT NULL
GROUP BY recording, l4_proto, saddr, sport, daddr, dport
ORDER BY skbs DESC, events DESC, saddr, daddr, sport, dport
