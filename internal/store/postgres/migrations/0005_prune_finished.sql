-- Finished messages are deleted after [queue] keep_finished unless a
-- mailbox holds a copy: the check, and the foreign key's when a message is
-- deleted, look mailbox copies up by queue id. Only local delivery writes
-- this index.
CREATE INDEX IF NOT EXISTS mailbox_messages_queue ON mailbox_messages(queue_id);
-- The pruning walks finished messages by the time their last attempt was
-- due (at or before they finished). Finishing a message changes its state,
-- so that update writes every index entry of the row anew already; this
-- one adds one entry per finished message.
CREATE INDEX IF NOT EXISTS messages_done ON messages(next_attempt_at) WHERE state = 'done';
