-- trace_queue_id (queue_id) repeated the first column of
-- trace_queue_recipient (queue_id, recipient), which serves the same
-- lookups: one index less to write for every trace event.
DROP INDEX IF EXISTS trace_queue_id;
