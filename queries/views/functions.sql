-- View `functions`: the probes that are kernel functions (kprobe/fentry),
-- with the position of their skb argument.
CREATE VIEW functions AS
SELECT recording, probe_id, name, skb_arg
FROM probes
WHERE kind = 'function'
