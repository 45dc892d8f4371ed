-- Which per-packet trace does each event belong to? Every skb event with
-- its trace key (recording, skb, trace_seq) and the trace's first time,
-- ordered by trace start, then time within the trace. A trace is one skb
-- address from its first event until the skb is freed (the free path:
-- skb:kfree_skb, skb:consume_skb and the release functions) or until it is
-- idle for more than $timeout_ns; the next event on a reused address starts
-- a new trace. Free events follow one another within microseconds (or a
-- deferred free's few milliseconds): one more than $free_gap_ns after a
-- free is another packet's, at a reused address. A changed IPv4 id between two events with the same L4
-- protocol and ports also starts one: the address was reused after a free
-- the recording did not see (e.g. in a namespace outside --netns). NAT
-- keeps the id; encapsulation changes the protocol or the ports. Rule
-- verdicts repeated on the same skb (same chain, rule and verdict) within
-- $dedup_ns of the previous one are marked is_dup. A base chain's exit
-- stays in the trace of the event before it, even after a free.
WITH ev AS (
    SELECT *,
           (probe IN ('skb:kfree_skb', 'skb:consume_skb')
            OR (kind = 'function' AND probe IN (
                'kfree_skb_reason', 'sk_skb_reason_drop', 'kfree_skb_list_reason',
                '__kfree_skb', 'kfree_skbmem', 'kfree_skb_partial',
                'consume_skb', '__consume_stateless_skb', 'napi_consume_skb',
                '__napi_kfree_skb', 'skb_attempt_defer_free',
                'skb_release_all', 'skb_release_head_state', 'skb_release_data',
                'skb_free_head'))) AS frees
    FROM events
),
rule_evals AS (
    SELECT *,
           coalesce(ts_ns - LAG(ts_ns) OVER (
                        PARTITION BY recording, skb, nft_family, nft_table, nft_chain,
                                     nft_rule_handle, nft_verdict
                        ORDER BY ts_ns) <= $dedup_ns, false) AS is_dup
    FROM ev
    WHERE nft_event = 'rule_eval'
),
deduped AS (
    -- (coalesce, not IS DISTINCT FROM: DuckDB 1.5.6 drops every row for the
    -- latter on an all-null Parquet column, and DuckDB is our oracle)
    SELECT *, false AS is_dup FROM ev WHERE coalesce(nft_event, '') <> 'rule_eval'
    UNION ALL
    SELECT * FROM rule_evals
),
exits AS (
    -- A base chain's exit (nft_do_chain returning) can follow the free: on
    -- 6.8+ a drop frees the skb inside nf_tables. It carries the free state
    -- of the event before it and never starts a trace (below).
    SELECT *,
           CASE WHEN nft_event = 'chain_exit'
                THEN coalesce(LAG(frees) OVER (PARTITION BY recording, skb ORDER BY ts_ns), false)
                ELSE frees END AS is_free
    FROM deduped
),
marked AS (
    SELECT *,
           LAG(ts_ns) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_ts,
           LAG(is_free) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_free,
           LAG(ip_id) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_ip_id,
           LAG(l4_proto) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_l4_proto,
           LAG(coalesce(CAST(sport AS INT), -1)) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_sport,
           LAG(coalesce(CAST(dport AS INT), -1)) OVER (PARTITION BY recording, skb ORDER BY ts_ns) AS prev_dport
    FROM exits
),
starts AS (
    SELECT *,
           CASE WHEN prev_ts IS NULL THEN 1
                WHEN nft_event = 'chain_exit' THEN 0
                WHEN ts_ns - prev_ts > $timeout_ns
                  OR (prev_free AND (NOT is_free OR ts_ns - prev_ts > $free_gap_ns))
                  OR (ip_id <> prev_ip_id AND l4_proto = prev_l4_proto
                      AND coalesce(CAST(sport AS INT), -1) = prev_sport
                      AND coalesce(CAST(dport AS INT), -1) = prev_dport) THEN 1 ELSE 0 END AS starts_trace
    FROM marked
),
sessions AS (
    -- Both running over the same window as above (one sort, streaming):
    -- the trace number, and its first time (the latest trace start so far).
    SELECT *,
           SUM(starts_trace) OVER (PARTITION BY recording, skb ORDER BY ts_ns
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS trace_seq,
           MAX(CASE WHEN starts_trace = 1 THEN ts_ns END) OVER (
               PARTITION BY recording, skb ORDER BY ts_ns
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS trace_first_ns
    FROM starts
)
SELECT recording, skb, trace_seq, trace_first_ns,
       ts_ns, probe, kind, cpu, netns, ifindex, mark, len, protocol,
       ip_version, saddr, daddr, l4_proto, sport, dport, tcp_flags,
       icmp_type, icmp_code, ip_id, drop_reason, location_sym,
       nft_event, nft_family, nft_table, nft_chain, nft_hook, nft_priority,
       nft_rule_handle, nft_rule_seq, nft_verdict, nft_target, nft_trace_id,
       is_free, is_dup
FROM sessions
ORDER BY recording, trace_first_ns, skb, trace_seq, ts_ns
