-- How did packets leave each nftables base chain? Per base chain (seen on
-- the skb by the eBPF hooks on nft_do_chain): the packets that entered,
-- the verdict the chain returned, and the time spent inside it, from entry
-- to exit (jumps, gotos and every rule included). A null verdict is an
-- entry whose exit was not recorded (the recording ended first).
WITH c AS (
    SELECT recording, netns, nft_family AS family, nft_table AS "table",
           nft_chain AS chain, nft_hook AS hook, nft_priority AS priority,
           nft_event, ts_ns,
           LEAD(nft_event) OVER (PARTITION BY recording, skb ORDER BY ts_ns, nft_event) AS next_event,
           LEAD(nft_verdict) OVER (PARTITION BY recording, skb ORDER BY ts_ns, nft_event) AS next_verdict,
           LEAD(ts_ns) OVER (PARTITION BY recording, skb ORDER BY ts_ns, nft_event) AS next_ts
    FROM events
    WHERE nft_event IN ('chain_entry', 'chain_exit')
      AND coalesce(nft_table, '') <> 'nft_tracer'
)
SELECT recording, netns, family, "table", chain, hook, priority,
       CASE WHEN next_event = 'chain_exit' THEN next_verdict END AS verdict,
       count(*) AS packets,
       round(avg(CASE WHEN next_event = 'chain_exit' THEN next_ts - ts_ns END) / 1000.0, 3) AS avg_us,
       round(max(CASE WHEN next_event = 'chain_exit' THEN next_ts - ts_ns END) / 1000.0, 3) AS max_us
FROM c
WHERE nft_event = 'chain_entry'
GROUP BY recording, netns, family, "table", chain, hook, priority,
         CASE WHEN next_event = 'chain_exit' THEN next_verdict END
ORDER BY recording, netns, family, "table", hook, priority, chain, verdict NULLS LAST
