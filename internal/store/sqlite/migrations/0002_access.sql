-- Access control (authentication policies, security groups, Conditional
-- Access, app registrations, trusted issuers, signing keys), tenant settings,
-- and the Sent Items folder of the embedded mailbox store.
--
-- Lists that are only ever read and written whole are JSON arrays.
-- Authentication policies are referred to by name (unique per tenant), the
-- way admins name them.

-- The tenant's directory.Settings as JSON (its json tags are the format).
ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

ALTER TABLE mailboxes ADD COLUMN auth_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE mailboxes ADD COLUMN tokens_valid_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN converted_from_hve INTEGER NOT NULL DEFAULT 0;

ALTER TABLE accounts ADD COLUMN auth_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN tokens_valid_from INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN allowed_apps TEXT NOT NULL DEFAULT '[]';     -- JSON array of app ids
ALTER TABLE accounts ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '[]'; -- JSON array of CIDR prefixes

-- The sending mailbox of a message submitted on the client endpoint (0 for
-- HVE accounts).
ALTER TABLE messages ADD COLUMN mailbox_id INTEGER NOT NULL DEFAULT 0;

-- mailbox_messages gains a folder, and a message may now be in one mailbox
-- twice (someone who sends to herself has an Inbox and a Sent Items copy).
-- SQLite cannot change a UNIQUE constraint, so the table is rebuilt; ids are
-- kept, and every existing copy was a delivery, so it is in the Inbox.
CREATE TABLE mailbox_messages_new (
	id           INTEGER PRIMARY KEY,
	mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	queue_id     TEXT NOT NULL REFERENCES messages(queue_id),
	recipient    TEXT NOT NULL,
	folder       TEXT NOT NULL, -- Inbox | Sent Items
	delivered_at INTEGER NOT NULL,
	UNIQUE (mailbox_id, queue_id, folder)
);
INSERT INTO mailbox_messages_new (id, mailbox_id, queue_id, recipient, folder, delivered_at)
	SELECT id, mailbox_id, queue_id, recipient, 'Inbox', delivered_at FROM mailbox_messages;
DROP TABLE mailbox_messages;
ALTER TABLE mailbox_messages_new RENAME TO mailbox_messages;

CREATE TABLE auth_policies (
	id                    INTEGER PRIMARY KEY,
	tenant_id             INTEGER NOT NULL REFERENCES tenants(id),
	name                  TEXT NOT NULL,
	allow_basic_auth_smtp INTEGER NOT NULL,
	created_at            INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
);

CREATE TABLE security_groups (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
);

-- Members are accounts and mailboxes (member_kind 'account' or 'mailbox').
CREATE TABLE security_group_members (
	group_id    INTEGER NOT NULL REFERENCES security_groups(id) ON DELETE CASCADE,
	member_kind TEXT NOT NULL,
	member_id   INTEGER NOT NULL,
	PRIMARY KEY (group_id, member_kind, member_id)
);
CREATE INDEX security_group_members_member ON security_group_members(member_kind, member_id);

CREATE TABLE ca_policies (
	id               INTEGER PRIMARY KEY,
	tenant_id        INTEGER NOT NULL REFERENCES tenants(id),
	name             TEXT NOT NULL,
	state            TEXT NOT NULL,
	grant_control    TEXT NOT NULL, -- "grant" is an SQL keyword
	client_apps      TEXT NOT NULL, -- the lists are JSON arrays
	include_users    TEXT NOT NULL,
	exclude_users    TEXT NOT NULL,
	include_groups   TEXT NOT NULL,
	exclude_groups   TEXT NOT NULL,
	include_networks TEXT NOT NULL,
	exclude_networks TEXT NOT NULL,
	created_at       INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
);

-- App and object ids are GUIDs, which compare without regard to case.
CREATE TABLE apps (
	id          INTEGER PRIMARY KEY,
	tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
	name        TEXT NOT NULL,
	app_id      TEXT NOT NULL UNIQUE COLLATE NOCASE,
	object_id   TEXT NOT NULL UNIQUE COLLATE NOCASE,
	permissions TEXT NOT NULL, -- JSON array
	created_at  INTEGER NOT NULL
);
CREATE INDEX apps_tenant_name ON apps(tenant_id, name);

CREATE TABLE app_secrets (
	id         INTEGER PRIMARY KEY,
	app        INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE, -- apps.id, not the app id
	hint       TEXT NOT NULL,
	hash       TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX app_secrets_app ON app_secrets(app);

CREATE TABLE issuers (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
	url        TEXT NOT NULL,
	audience   TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (tenant_id, url)
);

-- hve's own token-signing keys; retired_at is 0 for the current key.
CREATE TABLE signing_keys (
	kid         TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_pem BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	retired_at  INTEGER NOT NULL DEFAULT 0
);

-- Every existing tenant gets the built-in report-only policy that
-- CreateTenant now makes for new ones.
INSERT INTO ca_policies (tenant_id, name, state, grant_control, client_apps, include_users, exclude_users,
		include_groups, exclude_groups, include_networks, exclude_networks, created_at)
	SELECT id, 'Block legacy authentication', 'report-only', 'block', '["legacy"]', '["all"]', '[]',
		'[]', '[]', '[]', '[]', created_at FROM tenants;
