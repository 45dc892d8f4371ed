-- View `verdicts`: every nftables rule verdict and chain policy, from both
-- sources (eBPF nft hooks on the skb, and the kernel's nftrace messages),
-- with the rule's text from the ruleset snapshot taken at start. The
-- handle-less "rule continue" nftrace message the kernel sends when a chain
-- runs out of rules is not a verdict and is left out, and so are the
-- messages of the recorder's own table (nft_tracer). A base chain's exit
-- (the verdict `nft_do_chain` returned) repeats the verdict of the rule or
-- policy that decided, so it is left out too (query `chain_verdicts` has
-- them).
CREATE VIEW verdicts AS
WITH v AS (
    SELECT recording, 'ebpf' AS source, ts_ns, netns,
           nft_family AS family, nft_table AS "table", nft_chain AS chain,
           CASE nft_event WHEN 'rule_eval' THEN 'rule' ELSE nft_event END AS type,
           nft_rule_handle AS rule_handle, nft_verdict AS verdict, nft_target AS target
    FROM events
    WHERE (nft_event = 'policy'
           OR (nft_event = 'rule_eval' AND nft_rule_handle IS NOT NULL))
      AND coalesce(nft_table, '') <> 'nft_tracer'
    UNION ALL
    SELECT recording, 'nftrace' AS source, ts_ns, netns,
           family, "table", chain, type,
           rule_handle, coalesce(verdict, policy) AS verdict, target
    FROM nftrace
    WHERE (type = 'policy' OR (type = 'rule' AND rule_handle IS NOT NULL))
      AND "table" <> 'nft_tracer'
)
SELECT v.*, r.position AS rule_position, r.text AS rule_text
FROM v
LEFT JOIN rules r
       ON r.recording = v.recording
      AND r.snapshot = 'start'
      AND (r.netns IS NULL OR r.netns = v.netns)
      AND r.family = v.family
      AND r."table" = v."table"
      AND r.chain = v.chain
      AND r.handle = v.rule_handle
