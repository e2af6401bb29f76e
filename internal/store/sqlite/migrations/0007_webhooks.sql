-- Webhooks, their outbox, alerts and failure report addresses.
--
-- The notification dispatcher (internal/webhook) reads trace_events after a
-- cursor and writes one outbox row per webhook and event; the rows and the
-- cursor change in one transaction. Senders lease due rows as delivery
-- leases messages. Times are Unix nanoseconds.

CREATE TABLE webhooks (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
	url        TEXT NOT NULL,
	secret     TEXT NOT NULL, -- kept as given: every POST is signed with it
	events     TEXT NOT NULL, -- JSON array of event names
	created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id);

-- One row per webhook and trace event. payload is the JSON body, fixed
-- when the row is made so that every attempt signs the same bytes.
CREATE TABLE webhook_outbox (
	id              INTEGER PRIMARY KEY,
	webhook_id      INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	tenant_id       INTEGER NOT NULL,
	event_id        INTEGER NOT NULL,
	event           TEXT NOT NULL,
	payload         BLOB NOT NULL,
	state           TEXT NOT NULL, -- pending | done | failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	last_error      TEXT NOT NULL DEFAULT '',
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(state, next_attempt_at);
CREATE INDEX webhook_outbox_created ON webhook_outbox(created_at);

-- One row: the id of the last trace event the dispatcher handled. It
-- starts at the end of the trace: what happened before is not notified.
CREATE TABLE notify_cursor (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	last_event_id INTEGER NOT NULL
);
INSERT INTO notify_cursor (id, last_event_id) SELECT 1, coalesce(max(id), 0) FROM trace_events;

-- Raised alerts. dedup_key makes an alert happen once per tenant and key
-- (kind, account and period), on any node: the first insert wins.
CREATE TABLE alerts (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL,
	time       INTEGER NOT NULL,
	account    TEXT NOT NULL,
	kind       TEXT NOT NULL,
	message    TEXT NOT NULL,
	vals       TEXT NOT NULL, -- JSON object
	dedup_key  TEXT NOT NULL,
	event_id   INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX alerts_dedup ON alerts(tenant_id, dedup_key) WHERE dedup_key != '';
CREATE INDEX alerts_event ON alerts(event_id);

-- Where a plain-text report goes when a recipient of the account's message
-- fails for good; '' (the default) sends none, as HVE does.
ALTER TABLE accounts ADD COLUMN failure_report_to TEXT NOT NULL DEFAULT '';
