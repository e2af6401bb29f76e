-- Queue control: an admin can hold a queued message (delivery skips it
-- until it is released) and list the queue per tenant.
ALTER TABLE messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN held_by TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN held_at INTEGER NOT NULL DEFAULT 0;

-- hve queue list pages through one tenant's queued messages by queue id.
CREATE INDEX messages_queued_tenant ON messages(tenant_id, queue_id) WHERE state = 'queued';
