-- Times are Unix nanoseconds (UTC). Addresses and domains are lower case.

CREATE TABLE tenants (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE domains (
	id        INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL REFERENCES tenants(id),
	name      TEXT NOT NULL UNIQUE,
	type      TEXT NOT NULL
);

-- Every primary address and alias of every mailbox, account and group, so
-- that one lookup resolves a recipient and uniqueness holds across kinds.
CREATE TABLE addresses (
	address    TEXT PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
	kind       TEXT NOT NULL,
	object_id  INTEGER NOT NULL,
	is_primary INTEGER NOT NULL
);
CREATE INDEX addresses_object ON addresses(kind, object_id);

CREATE TABLE mailboxes (
	id            INTEGER PRIMARY KEY,
	tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
	name          TEXT NOT NULL,
	display_name  TEXT NOT NULL,
	address       TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL
);

CREATE TABLE accounts (
	id            INTEGER PRIMARY KEY,
	tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
	name          TEXT NOT NULL,
	display_name  TEXT NOT NULL,
	address       TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	reply_to      TEXT NOT NULL DEFAULT '',
	enabled       INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);

CREATE TABLE dist_groups (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
	name       TEXT NOT NULL,
	address    TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
);

CREATE TABLE group_members (
	group_id    INTEGER NOT NULL REFERENCES dist_groups(id) ON DELETE CASCADE,
	member_kind TEXT NOT NULL,
	member_id   INTEGER NOT NULL,
	PRIMARY KEY (group_id, member_kind, member_id)
);
CREATE INDEX group_members_member ON group_members(member_kind, member_id);

-- The spool. A message stays 'queued' until every recipient is dealt with;
-- its body (in message_bodies) is kept afterwards because mailbox copies
-- refer to it.
CREATE TABLE messages (
	queue_id        TEXT PRIMARY KEY,
	tenant_id       INTEGER NOT NULL,
	account_id      INTEGER NOT NULL,
	sender          TEXT NOT NULL,
	recipients      TEXT NOT NULL, -- JSON array of envelope recipients
	message_id      TEXT NOT NULL,
	subject         TEXT NOT NULL,
	client_ip       TEXT NOT NULL,
	size            INTEGER NOT NULL,
	received_at     INTEGER NOT NULL,
	state           TEXT NOT NULL, -- queued | done
	next_attempt_at INTEGER NOT NULL,
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	finished_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_due ON messages(state, next_attempt_at);

-- Bodies live apart from the rows that delivery updates (leases, state):
-- SQLite rewrites a whole row on UPDATE, and bodies are up to 10 MB.
CREATE TABLE message_bodies (
	queue_id TEXT PRIMARY KEY REFERENCES messages(queue_id),
	body     BLOB NOT NULL
);

CREATE TABLE mailbox_messages (
	id           INTEGER PRIMARY KEY,
	mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	queue_id     TEXT NOT NULL REFERENCES messages(queue_id),
	recipient    TEXT NOT NULL,
	delivered_at INTEGER NOT NULL,
	UNIQUE (mailbox_id, queue_id)
);

CREATE TABLE trace_events (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL,
	time       INTEGER NOT NULL,
	queue_id   TEXT NOT NULL,
	message_id TEXT NOT NULL,
	sender     TEXT NOT NULL,
	recipient  TEXT NOT NULL,
	event      TEXT NOT NULL,
	status     TEXT NOT NULL,
	detail     TEXT NOT NULL,
	client_ip  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	size       INTEGER NOT NULL
);
CREATE INDEX trace_tenant_time ON trace_events(tenant_id, time);
CREATE INDEX trace_queue_id ON trace_events(queue_id);
CREATE INDEX trace_message_id ON trace_events(message_id);
CREATE INDEX trace_sender ON trace_events(sender, time);
CREATE INDEX trace_recipient ON trace_events(recipient, time);
