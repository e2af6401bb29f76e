-- Finished messages are deleted after [queue] keep_finished unless a
-- mailbox holds a copy: the check, and the foreign key's when a message is
-- deleted, look mailbox copies up by queue id. Only local delivery writes
-- this index.
CREATE INDEX IF NOT EXISTS mailbox_messages_queue ON mailbox_messages(queue_id);
