-- Limits: the quota counters the limits engine leases blocks from, the
-- marks of once-a-day events (warning level crossed), the per-account
-- thresholds, and the defaults of the new tenant settings.

-- One row per counter and bucket. used counts the units leased from the
-- bucket (nodes serve them from memory and return what they do not use).
-- Times are Unix nanoseconds; a row may be deleted once expires_at passed.
CREATE TABLE quota_counters (
	key        TEXT NOT NULL,
	bucket     INTEGER NOT NULL,
	used       INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (key, bucket)
) WITHOUT ROWID;
CREATE INDEX quota_counters_expiry ON quota_counters(expires_at);

-- An event that must happen once per counter and window, on any node.
CREATE TABLE quota_events (
	key          TEXT NOT NULL,
	window_start INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	PRIMARY KEY (key, window_start)
) WITHOUT ROWID;
CREATE INDEX quota_events_expiry ON quota_events(expires_at);

-- 0 means none.
ALTER TABLE accounts ADD COLUMN daily_recipient_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN warn_at INTEGER NOT NULL DEFAULT 0; -- percent

-- Existing tenants get the defaults of directory.DefaultSettings.
UPDATE tenants SET settings = json_set(settings, '$.external_sending', 'off')
	WHERE json_type(settings, '$.external_sending') IS NULL;
UPDATE tenants SET settings = json_set(settings, '$.price_per_million', 42)
	WHERE json_type(settings, '$.price_per_million') IS NULL;
