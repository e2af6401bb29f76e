-- Trace retention deletes events older than a time across all tenants;
-- without this index each hourly run would scan the whole table.
CREATE INDEX IF NOT EXISTS trace_time ON trace_events(time);
