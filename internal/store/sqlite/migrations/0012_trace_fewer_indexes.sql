-- Every trace event is written into each of its table's indexes, and a node
-- writes two or more events per message: each index less is work saved on
-- every message.
--
-- Retention reads old events through trace_tenant_time, one tenant after
-- the other, so it needs no index by time alone.
DROP INDEX IF EXISTS trace_time;
-- The event filter's index served the home page's recent alerts. Alerts
-- are rare among events, so a partial index of them does that as well, and
-- is not written for the Received and Delivered events of every message.
-- Other event filters read the tenant's events by time.
DROP INDEX IF EXISTS trace_tenant_event_time;
CREATE INDEX IF NOT EXISTS trace_alert_time ON trace_events(tenant_id, time) WHERE event = 'Alert';
