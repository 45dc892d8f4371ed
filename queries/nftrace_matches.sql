-- Which packet (skb) did each nftrace message come from? nftrace messages
-- carry headers, not the skb: each is matched to the skb event with the same
-- addresses, L4 protocol, ports, IP id and ICMP type within $match_window_ns,
-- preferring one in the same network namespace and on the same interface,
-- then the nearest in time. The kernel puts the headers only in the first
-- message of a trace id, so later ones (policy, return) take them from it.
-- The handle-less "rule continue" the kernel sends when a chain runs out of
-- rules is not a rule evaluation and is left out, and so are the messages
-- of the recorder's own table (nft_tracer). Messages with no matching event
-- are not listed.
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
candidates AS (
    SELECT n.recording, n.nftrace_row, n.ts_ns, n.netns, n.trace_id, n.type,
           n.family, n."table", n.chain, n.rule_handle, n.verdict, n.target,
           n.policy, n.iif, n.oif,
           e.skb, e.ts_ns AS event_ts_ns,
           row_number() OVER (
               PARTITION BY n.nftrace_row
               ORDER BY CASE WHEN e.netns = n.netns THEN 0 ELSE 1 END,
                        CASE WHEN e.ifindex = coalesce(n.iif, n.oif) THEN 0 ELSE 1 END,
                        abs(CAST(n.ts_ns AS BIGINT) - CAST(e.ts_ns AS BIGINT))) AS rank
    FROM n
    JOIN events e
      ON e.recording = n.recording
     AND e.saddr = n.saddr
     AND e.daddr = n.daddr
     AND e.l4_proto = n.l4_proto
     AND coalesce(CAST(e.sport AS INT), -1) = coalesce(CAST(n.sport AS INT), -1)
     AND coalesce(CAST(e.dport AS INT), -1) = coalesce(CAST(n.dport AS INT), -1)
     AND coalesce(CAST(e.ip_id AS INT), -1) = coalesce(CAST(n.ip_id AS INT), -1)
     AND coalesce(CAST(e.icmp_type AS INT), -1) = coalesce(CAST(n.icmp_type AS INT), -1)
    WHERE n.header_group > 0
      AND NOT (n.type = 'rule' AND n.rule_handle IS NULL)
      AND n."table" <> 'nft_tracer'
      AND CAST(e.ts_ns AS BIGINT) BETWEEN CAST(n.ts_ns AS BIGINT) - $match_window_ns
                                      AND CAST(n.ts_ns AS BIGINT) + $match_window_ns
)
SELECT recording, nftrace_row, ts_ns, netns, trace_id, type, family, "table", chain,
       rule_handle, verdict, target, policy, iif, oif, skb, event_ts_ns
FROM candidates
WHERE rank = 1
ORDER BY recording, skb, ts_ns, nftrace_row
