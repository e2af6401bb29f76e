-- Delivery to the organisation's mail servers: routes per accepted domain,
-- and a delivery state per recipient, so that a retry goes only to the
-- recipients still open and never again to one a next hop accepted.

-- One route per tenant and domain; domain '*' is the tenant's default
-- route. auth_password is kept as given because it must be sent to the
-- next hop; the API never shows it.
CREATE TABLE routes (
	id              INTEGER PRIMARY KEY,
	tenant_id       INTEGER NOT NULL REFERENCES tenants(id),
	domain          TEXT NOT NULL,
	type            TEXT NOT NULL, -- local | smtp | lmtp
	target          TEXT NOT NULL, -- host:port or unix:/path
	tls             TEXT NOT NULL, -- required | opportunistic | none
	auth_user       TEXT NOT NULL,
	auth_password   TEXT NOT NULL,
	client_cert     TEXT NOT NULL,
	client_key      TEXT NOT NULL,
	ca_file         TEXT NOT NULL,
	max_connections INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (tenant_id, domain)
);

-- The delivery state of each recipient of a queued message: the envelope
-- recipients (from enqueueing on) and group members relayed to a next hop
-- (via names the group). seq keeps the order recipients were added in.
-- messages.next_attempt_at is the earliest next_attempt_at of the
-- message's open (pending, deferred) recipients.
CREATE TABLE queue_recipients (
	queue_id        TEXT NOT NULL REFERENCES messages(queue_id),
	recipient       TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	via             TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL, -- pending | deferred | delivered | failed | expanded
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	last_reply      TEXT NOT NULL DEFAULT '',
	updated_at      INTEGER NOT NULL,
	PRIMARY KEY (queue_id, recipient)
) WITHOUT ROWID;

-- Messages queued before this migration get their envelope recipients,
-- pending. Finished messages keep none: their outcome is in trace.
INSERT OR IGNORE INTO queue_recipients (queue_id, recipient, seq, state, next_attempt_at, updated_at)
	SELECT m.queue_id, lower(j.value), j.key, 'pending', m.next_attempt_at, m.received_at
	FROM messages m, json_each(m.recipients) j
	WHERE m.state = 'queued';
