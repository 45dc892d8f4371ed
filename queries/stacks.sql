-- Which kernel call paths led to each probe? Per probe and kernel stack
-- (record --stack): the events and distinct skbs seen with it, and the
-- stack as text, innermost frame first (for tracepoints and fentry the
-- first frames are the BPF program and the tracepoint or trampoline that
-- called it; an unnamed frame shows its address).
WITH frames AS (
    SELECT recording, stack_id,
           string_agg(coalesce(symbol, '0x' || lower(to_hex(address))), ' <- ' ORDER BY frame) AS stack
    FROM stacks
    GROUP BY recording, stack_id
)
SELECT e.recording, e.probe, e.stack_id, count(*) AS events,
       count(DISTINCT e.skb) AS skbs, f.stack
FROM events e
JOIN frames f ON f.recording = e.recording AND f.stack_id = e.stack_id
GROUP BY e.recording, e.probe, e.stack_id, f.stack
ORDER BY e.recording, e.probe, events DESC, e.stack_id
