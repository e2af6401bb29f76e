-- Usage metering and detailed report jobs.
--
-- The usage aggregator (internal/usage) reads trace_events after a cursor
-- and adds them to hourly counters per tenant and account (the sender
-- address); the counters and the cursor change in one transaction. Hours
-- are Unix nanoseconds of the start of the UTC hour.

CREATE TABLE usage_hours (
	tenant_id           INTEGER NOT NULL,
	account             TEXT NOT NULL,
	hour                INTEGER NOT NULL,
	messages            INTEGER NOT NULL DEFAULT 0,
	recipients          INTEGER NOT NULL DEFAULT 0,
	expanded_recipients INTEGER NOT NULL DEFAULT 0,
	bytes               INTEGER NOT NULL DEFAULT 0,
	failures            INTEGER NOT NULL DEFAULT 0,
	refusals            INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, hour, account)
);

-- Submission refusals by the reply's name (package reply).
CREATE TABLE usage_refusals (
	tenant_id INTEGER NOT NULL,
	account   TEXT NOT NULL,
	hour      INTEGER NOT NULL,
	reason    TEXT NOT NULL,
	count     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour, account, reason)
);

-- One row: the id of the last trace event counted. Existing trace is
-- metered from the start.
CREATE TABLE usage_cursor (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	last_event_id INTEGER NOT NULL
);
INSERT INTO usage_cursor (id, last_event_id) VALUES (1, 0);

-- Detailed report jobs. The CSV is kept in the database in chunks, not in
-- a file, so that with several nodes any node can serve a download.
CREATE TABLE report_jobs (
	id          INTEGER PRIMARY KEY,
	tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
	account     TEXT NOT NULL,
	since       INTEGER NOT NULL,
	until       INTEGER NOT NULL,
	state       TEXT NOT NULL, -- queued | running | done | failed
	rows        INTEGER NOT NULL DEFAULT 0,
	error       TEXT NOT NULL DEFAULT '',
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX report_jobs_state ON report_jobs(state, id);

CREATE TABLE report_chunks (
	job_id INTEGER NOT NULL REFERENCES report_jobs(id) ON DELETE CASCADE,
	seq    INTEGER NOT NULL,
	data   BLOB NOT NULL,
	PRIMARY KEY (job_id, seq)
);

-- A detailed report looks up the latest event of each queue id and
-- recipient.
CREATE INDEX IF NOT EXISTS trace_queue_recipient ON trace_events(queue_id, recipient);
