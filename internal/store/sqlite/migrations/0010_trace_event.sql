-- The trace search's event filter (the home page's recent alerts: a
-- tenant's Alert events of the last day) reads one tenant's events of one
-- name by time, without scanning the tenant's whole day of mail.
CREATE INDEX IF NOT EXISTS trace_tenant_event_time ON trace_events(tenant_id, event, time);
