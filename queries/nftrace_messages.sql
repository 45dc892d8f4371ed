-- What did the kernel's own nftables trace say? nftrace messages by type
-- (rule, policy, return) and verdict (or chain policy), per recording.
SELECT recording, type, coalesce(verdict, policy) AS verdict, count(*) AS messages
FROM nftrace
GROUP BY recording, type, coalesce(verdict, policy)
ORDER BY recording, messages DESC, type, verdict
