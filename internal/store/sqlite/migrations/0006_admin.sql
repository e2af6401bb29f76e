-- Admin users of the web admin center and the admin API, their API tokens
-- and web sessions, and the audit log.
--
-- Tokens and session ids are random and long: only their SHA-256 (hex) is
-- kept. Passwords are argon2id PHC strings.

CREATE TABLE admin_users (
	id             INTEGER PRIMARY KEY,
	name           TEXT NOT NULL UNIQUE COLLATE NOCASE,
	role           TEXT NOT NULL,
	tenant_id      INTEGER REFERENCES tenants(id), -- NULL: every tenant
	password_hash  TEXT NOT NULL,
	totp_secret    BLOB,                           -- NULL: no second factor
	totp_last_step INTEGER NOT NULL DEFAULT 0,
	enabled        INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);

CREATE TABLE admin_tokens (
	id         INTEGER PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	hint       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL -- 0: never
);
CREATE INDEX admin_tokens_user ON admin_tokens(user_id);

CREATE TABLE admin_sessions (
	id_hash    TEXT PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
	csrf       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
);
CREATE INDEX admin_sessions_user ON admin_sessions(user_id);

-- One row per change. The tenant's name is kept as it was, so that the log
-- reads the same after a rename; tenant_id 0 is a change outside tenants.
CREATE TABLE audit_log (
	id          INTEGER PRIMARY KEY,
	time        INTEGER NOT NULL,
	actor       TEXT NOT NULL,
	role        TEXT NOT NULL,
	via         TEXT NOT NULL,
	tenant_id   INTEGER NOT NULL,
	tenant_name TEXT NOT NULL,
	action      TEXT NOT NULL,
	object      TEXT NOT NULL,
	method      TEXT NOT NULL,
	path        TEXT NOT NULL,
	status      INTEGER NOT NULL,
	request     TEXT NOT NULL, -- JSON, secrets redacted; '' for none
	before      TEXT NOT NULL,
	after       TEXT NOT NULL,
	remote_addr TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
CREATE INDEX audit_log_time ON audit_log(time);
