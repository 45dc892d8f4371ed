-- Which nftables rules decided what? Verdict counts per rule (and chain
-- policy), with the rule's position and text, from both verdict sources.
SELECT recording,
       source,
       family,
       "table",
       chain,
       rule_handle,
       rule_position,
       type,
       verdict,
       count(*) AS packets,
       rule_text
FROM verdicts
GROUP BY recording, source, family, "table", chain, rule_handle, rule_position, type, verdict, rule_text
ORDER BY recording, source, family, "table", chain, rule_position NULLS LAST, type, verdict
