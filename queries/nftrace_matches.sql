-- Which packet (skb) did each nftrace message come from? nftrace messages
-- carry headers, not the skb: each is matched to the skb event with the same
-- addresses, L4 protocol, ports, IP id and ICMP type within $match_window_ns,
-- preferring one in the same network namespace and on the same interface,
-- then the nearest in time (the earlier on a tie, then the lower skb). The
-- kernel puts the headers only in the first message of a trace id, so later
-- ones (policy, return) take them from it. The handle-less "rule continue"
-- the kernel sends when a chain runs out of rules is not a rule evaluation
-- and is left out, and so are the messages of the recorder's own table
-- (nft_tracer). Messages with no matching event are not listed.
--
-- An as-of join, not a join on the window: IPv6 has no IP id, so a flow's
-- events and messages would pair every one with every one within the
-- window. Messages and the events of their flows' time spans go into one
-- stream; for each message, the last event before it and the first after
-- it are read off that stream (sorted once per preference level), and the
-- nearest of those within the window is taken.
WITH numbered AS (
    SELECT *,
           row_number() OVER (ORDER BY recording, ts_ns, trace_id) AS nftrace_row,
           SUM(CASE WHEN ip_version IS NULL THEN 0 ELSE 1 END) OVER (
               PARTITION BY recording, netns, trace_id ORDER BY ts_ns
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS header_group
    FROM nftrace
),
n AS (
    SELECT recording, nftrace_row, ts_ns, netns, trace_id, type, family, "table", chain,
           rule_handle, verdict, target, policy, iif, oif, header_group,
           first_value(saddr) OVER h AS saddr,
           first_value(daddr) OVER h AS daddr,
           first_value(l4_proto) OVER h AS l4_proto,
           first_value(sport) OVER h AS sport,
           first_value(dport) OVER h AS dport,
           first_value(ip_id) OVER h AS ip_id,
           first_value(icmp_type) OVER h AS icmp_type
    FROM numbered
    WINDOW h AS (PARTITION BY recording, netns, trace_id, header_group ORDER BY ts_ns)
),
-- The messages to match, with their flow key (absent fields as -1) and the
-- interface they name (-1 when none, which no event has).
messages AS (
    SELECT *,
           CAST(ts_ns AS BIGINT) AS t,
           coalesce(CAST(sport AS INT), -1) AS k_sport,
           coalesce(CAST(dport AS INT), -1) AS k_dport,
           coalesce(CAST(ip_id AS INT), -1) AS k_ip_id,
           coalesce(CAST(icmp_type AS INT), -1) AS k_icmp,
           CAST(netns AS BIGINT) AS netns_key,
           coalesce(CAST(coalesce(iif, oif) AS BIGINT), -1) AS if_key
    FROM n
    WHERE header_group > 0
      AND NOT (type = 'rule' AND rule_handle IS NULL)
      AND "table" <> 'nft_tracer'
      AND saddr IS NOT NULL AND daddr IS NOT NULL AND l4_proto IS NOT NULL
),
-- Each flow's messages, widened by the window: only events inside can match.
spans AS (
    SELECT recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp,
           min(t) - $match_window_ns AS lo, max(t) + $match_window_ns AS hi
    FROM messages
    GROUP BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp
),
stream AS (
    SELECT recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp,
           netns_key, if_key, t, nftrace_row,
           NULL AS event_ts, NULL AS skb
    FROM messages
    UNION ALL
    SELECT s.recording, s.saddr, s.daddr, s.l4_proto, s.k_sport, s.k_dport, s.k_ip_id, s.k_icmp,
           CAST(e.netns AS BIGINT), CAST(e.ifindex AS BIGINT), CAST(e.ts_ns AS BIGINT),
           NULL, e.ts_ns, e.skb
    FROM events e
    JOIN spans s
      ON e.recording = s.recording
     AND e.saddr = s.saddr
     AND e.daddr = s.daddr
     AND e.l4_proto = s.l4_proto
     AND coalesce(CAST(e.sport AS INT), -1) = s.k_sport
     AND coalesce(CAST(e.dport AS INT), -1) = s.k_dport
     AND coalesce(CAST(e.ip_id AS INT), -1) = s.k_ip_id
     AND coalesce(CAST(e.icmp_type AS INT), -1) = s.k_icmp
    WHERE CAST(e.ts_ns AS BIGINT) BETWEEN s.lo AND s.hi
),
-- Preference levels: 1 same netns and interface, 2 same netns, 3 same
-- interface, 4 any. For each, the nearest event before and after.
neighbours AS (
    SELECT nftrace_row, t,
           last_value(event_ts IGNORE NULLS) OVER l1b AS b1_t, last_value(skb IGNORE NULLS) OVER l1b AS b1_skb,
           first_value(event_ts IGNORE NULLS) OVER l1a AS a1_t, first_value(skb IGNORE NULLS) OVER l1a AS a1_skb,
           last_value(event_ts IGNORE NULLS) OVER l2b AS b2_t, last_value(skb IGNORE NULLS) OVER l2b AS b2_skb,
           first_value(event_ts IGNORE NULLS) OVER l2a AS a2_t, first_value(skb IGNORE NULLS) OVER l2a AS a2_skb,
           last_value(event_ts IGNORE NULLS) OVER l3b AS b3_t, last_value(skb IGNORE NULLS) OVER l3b AS b3_skb,
           first_value(event_ts IGNORE NULLS) OVER l3a AS a3_t, first_value(skb IGNORE NULLS) OVER l3a AS a3_skb,
           last_value(event_ts IGNORE NULLS) OVER l4b AS b4_t, last_value(skb IGNORE NULLS) OVER l4b AS b4_skb,
           first_value(event_ts IGNORE NULLS) OVER l4a AS a4_t, first_value(skb IGNORE NULLS) OVER l4a AS a4_skb
    FROM stream
    WINDOW
        l1b AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, netns_key, if_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        l1a AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, netns_key, if_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
        l2b AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, netns_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        l2a AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, netns_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
        l3b AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, if_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        l3a AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp, if_key
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
        l4b AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        l4a AS (PARTITION BY recording, saddr, daddr, l4_proto, k_sport, k_dport, k_ip_id, k_icmp
                ORDER BY t, skb NULLS FIRST ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
),
-- The eight candidates of each message, one row each (a cross join with
-- the eight (level, side) pairs, so `neighbours` is planned once).
picks AS (
    SELECT nb.nftrace_row, nb.t, k.level,
           CASE k.i WHEN 1 THEN b1_t WHEN 2 THEN a1_t WHEN 3 THEN b2_t WHEN 4 THEN a2_t
                    WHEN 5 THEN b3_t WHEN 6 THEN a3_t WHEN 7 THEN b4_t ELSE a4_t END AS event_ts,
           CASE k.i WHEN 1 THEN b1_skb WHEN 2 THEN a1_skb WHEN 3 THEN b2_skb WHEN 4 THEN a2_skb
                    WHEN 5 THEN b3_skb WHEN 6 THEN a3_skb WHEN 7 THEN b4_skb ELSE a4_skb END AS skb
    FROM neighbours nb
    CROSS JOIN (VALUES (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3), (7, 4), (8, 4)) AS k(i, level)
    WHERE nb.nftrace_row IS NOT NULL
),
best AS (
    SELECT nftrace_row, event_ts, skb,
           row_number() OVER (
               PARTITION BY nftrace_row
               ORDER BY level, abs(t - CAST(event_ts AS BIGINT)), event_ts, skb) AS rank
    FROM picks
    WHERE event_ts IS NOT NULL AND abs(t - CAST(event_ts AS BIGINT)) <= $match_window_ns
)
SELECT m.recording, m.nftrace_row, m.ts_ns, m.netns, m.trace_id, m.type, m.family, m."table",
       m.chain, m.rule_handle, m.verdict, m.target, m.policy, m.iif, m.oif,
       b.skb, b.event_ts AS event_ts_ns
FROM messages m
JOIN best b ON b.nftrace_row = m.nftrace_row AND b.rank = 1
ORDER BY m.recording, b.skb, m.ts_ns, m.nftrace_row
