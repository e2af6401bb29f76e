package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// Enqueue stores messages and their trace events in one transaction of
// one round trip (Store.batch): the messages, their bodies, their
// recipients and their Sent Items copies in four multi-row statements
// (columns as arrays, unnested), whatever the size of the batch; the
// events follow, last, as queueEvents requires.
func (s *Store) Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error {
	n := len(msgs)
	var (
		queueID, sender, rcpts, messageID, subject, clientIP = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		tenant, account, mailbox, size, received, due        = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		leaseOwner, leaseUntil                               = make([]string, n), make([]int64, n)
		bodies                                               = make([][]byte, n)
	)
	var r struct { // one entry per envelope recipient
		queueID, rcpt []string
		seq, due, at  []int64
	}
	var sent struct { // one entry per message sent by a mailbox
		mailbox, at   []int64
		queueID, rcpt []string
	}
	for i, m := range msgs {
		// The first attempt is due at once unless the sender is paced.
		d := m.ReceivedAt
		if !m.NotBefore.IsZero() {
			d = m.NotBefore
		}
		queueID[i], tenant[i], account[i], mailbox[i], sender[i], rcpts[i] = m.QueueID, m.TenantID, m.AccountID, m.MailboxID, m.Sender, jsonList(m.Recipients)
		messageID[i], subject[i], clientIP[i], size[i], received[i], due[i] = m.MessageID, m.Subject, m.ClientIP, m.Size, nanos(m.ReceivedAt), nanos(d)
		leaseOwner[i], leaseUntil[i] = m.LeaseOwner, nanos(m.LeaseUntil)
		bodies[i] = m.Body
		if bodies[i] == nil {
			bodies[i] = []byte{} // the column is NOT NULL; nil is an empty message
		}
		for j, rcpt := range m.Recipients {
			r.queueID, r.rcpt = append(r.queueID, m.QueueID), append(r.rcpt, rcpt)
			r.seq, r.due, r.at = append(r.seq, int64(j)), append(r.due, nanos(d)), append(r.at, nanos(m.ReceivedAt))
		}
		if m.MailboxID != 0 {
			// The sender is the copy's recipient: a Sent Items copy was
			// not delivered for any one recipient.
			sent.mailbox, sent.at = append(sent.mailbox, m.MailboxID), append(sent.at, nanos(m.ReceivedAt))
			sent.queueID, sent.rcpt = append(sent.queueID, m.QueueID), append(sent.rcpt, m.Sender)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO messages
		(queue_id, tenant_id, account_id, mailbox_id, sender, recipients, message_id, subject, client_ip, size, received_at, state, next_attempt_at,
			lease_owner, lease_until)
		SELECT q, t, a, mb, s, r::jsonb, mid, subj, ip, sz, rcv, 'queued', due, lo, lu
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bigint[]) AS u(q, t, a, mb, s, r, mid, subj, ip, sz, rcv, due, lo, lu)`,
		queueID, tenant, account, mailbox, sender, rcpts, messageID, subject, clientIP, size, received, due, leaseOwner, leaseUntil)
	b.Queue(`INSERT INTO message_bodies (queue_id, body) SELECT * FROM unnest($1::text[], $2::bytea[])`, queueID, bodies)
	// An address twice in one envelope is one recipient (its first
	// place counts).
	b.Queue(`INSERT INTO queue_recipients (queue_id, recipient, seq, state, next_attempt_at, updated_at)
		SELECT q, r, seq, 'pending', due, at FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS u(q, r, seq, due, at)
		ON CONFLICT (queue_id, recipient) DO NOTHING`,
		r.queueID, r.rcpt, r.seq, r.due, r.at)
	if len(sent.queueID) > 0 {
		b.Queue(`INSERT INTO mailbox_messages (mailbox_id, queue_id, recipient, folder, delivered_at)
			SELECT mb, q, r, $5, at FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS u(mb, q, r, at)`,
			sent.mailbox, sent.queueID, sent.rcpt, sent.at, store.FolderSentItems)
	}
	queueEvents(b, events, false)
	if err := s.batch(ctx, b); err != nil {
		return fmt.Errorf("enqueueing %d messages: %w", len(msgs), err)
	}
	return nil
}

// Claim leases due messages to owner; held messages wait for their
// release.
//
// Nodes claim at the same time: SKIP LOCKED passes over the rows another
// claim has locked (it leases them), and a row whose lease another node
// committed since this statement began is checked again once locked
// (read committed re-reads it), so it no longer qualifies. Each message
// thus goes to one owner until its lease has passed; after that, a node
// that died holding it loses it to the next claim.
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	var msgs []*queue.Message
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// The claim walks messages_due in due order and stops at limit
		// messages: without bitmap scans and sorts, that is the plan the
		// planner is left with. A bitmap scan reads every entry of the
		// index, those of the versions that claims and outcomes left behind
		// (until VACUUM removes them) included, and sorts what it finds:
		// its cost grows with the mail the node has handled, not with the
		// queue.
		if _, err := tx.Exec(ctx, customPlans+`, set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH due AS (
				SELECT queue_id FROM messages
				WHERE state = 'queued' AND NOT held AND next_attempt_at <= $3 AND lease_until < $3
				ORDER BY next_attempt_at LIMIT $4
				FOR UPDATE SKIP LOCKED)
			UPDATE messages m SET lease_owner = $1, lease_until = $2 FROM due WHERE m.queue_id = due.queue_id
			RETURNING m.queue_id, m.tenant_id, m.account_id, m.mailbox_id, m.sender, m.recipients, m.message_id, m.subject,
				m.client_ip, m.size, m.received_at`,
			owner, nanos(now.Add(lease)), nanos(now), limit)
		msgs, err = collect(rows, err, func(row scanner) (*queue.Message, error) {
			m := &queue.Message{}
			var rcpts []byte
			var received int64
			err := row.Scan(&m.QueueID, &m.TenantID, &m.AccountID, &m.MailboxID, &m.Sender, &rcpts, &m.MessageID, &m.Subject, &m.ClientIP, &m.Size, &received)
			if err != nil {
				return nil, err
			}
			m.ReceivedAt = fromNanos(received)
			return m, fromJSONList(rcpts, &m.Recipients)
		})
		if err != nil || len(msgs) == 0 {
			return err
		}
		return loadDue(ctx, tx, msgs, now)
	})
	if err != nil {
		return nil, fmt.Errorf("claiming queued messages: %w", err)
	}
	return msgs, nil
}

const recipientColumns = `queue_id, recipient, via, state, attempts, next_attempt_at, last_reply, updated_at`

func scanRecipient(row scanner) (queueID string, r queue.Recipient, err error) {
	var state string
	var next, updated int64
	err = row.Scan(&queueID, &r.Address, &r.Via, &state, &r.Attempts, &next, &r.LastReply, &updated)
	r.State, r.NextAttemptAt, r.UpdatedAt = queue.RecipientState(state), fromNanos(next), fromNanos(updated)
	return queueID, r, err
}

// loadDue fills in the recipients of claimed messages that are due at now.
func loadDue(ctx context.Context, tx pgx.Tx, msgs []*queue.Message, now time.Time) error {
	byID := make(map[string]*queue.Message, len(msgs))
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		byID[m.QueueID] = m
		ids = append(ids, m.QueueID)
	}
	rows, err := tx.Query(ctx, `SELECT `+recipientColumns+` FROM queue_recipients
		WHERE state IN `+openStates+` AND next_attempt_at <= $1 AND queue_id = ANY($2)
		ORDER BY queue_id, seq`, nanos(now), ids)
	_, err = collect(rows, err, func(row scanner) (struct{}, error) {
		id, r, err := scanRecipient(row)
		if m := byID[id]; m != nil && err == nil {
			m.Due = append(m.Due, r)
		}
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("loading due recipients: %w", err)
	}
	return nil
}

// QueueRecipients returns the delivery state of every recipient of a message.
func (s *Store) QueueRecipients(ctx context.Context, queueID string) ([]queue.Recipient, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE queue_id = $1)`, queueID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("message %s: %w", queueID, mapErr(err))
	}
	if !exists {
		return nil, fmt.Errorf("message %s: %w", queueID, store.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+recipientColumns+` FROM queue_recipients WHERE queue_id = $1 ORDER BY seq`, queueID)
	list, err := collect(rows, err, func(row scanner) (queue.Recipient, error) {
		_, r, err := scanRecipient(row)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("recipients of %s: %w", queueID, err)
	}
	return list, nil
}

// Finish records deliveries in one transaction of one round trip
// (Store.batch), the trace events last.
//
// It first locks the rows of the messages, in queue id order so that two
// Finish calls cannot deadlock. A message's lease may have passed to
// another node while the first was still delivering; both then finish the
// same message, and without the lock each would count its open recipients
// without seeing the other's uncommitted changes, and could leave a message
// with no open recipient queued, or end one that still has some. With the
// lock, the second waits for the first to commit and then sees its
// changes. The recipient upserts keep final states, as SQLite does, so a
// late Finish cannot undo a delivery.
func (s *Store) Finish(ctx context.Context, deliveries []store.Delivery) error {
	if len(deliveries) == 0 {
		return nil
	}
	now := nanos(time.Now())
	var ids []string
	seen := make(map[string]bool, len(deliveries))
	for _, d := range deliveries {
		if !seen[d.QueueID] {
			seen[d.QueueID] = true
			ids = append(ids, d.QueueID)
		}
	}
	var events []trace.Event
	b := &pgx.Batch{}
	b.Queue(customPlans)
	b.Queue(`SELECT queue_id FROM messages WHERE queue_id = ANY($1) ORDER BY queue_id FOR UPDATE`, ids)
	for _, d := range deliveries {
		for _, c := range d.Copies {
			b.Queue(`INSERT INTO mailbox_messages (mailbox_id, queue_id, recipient, folder, delivered_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mailbox_id, queue_id, folder) DO NOTHING`,
				c.MailboxID, d.QueueID, c.Recipient, store.FolderInbox, now)
		}
		// One statement per recipient, as SQLite does, so that several
		// new recipients of a message each get the next place, and a
		// recipient named twice is updated twice in order.
		for _, r := range d.Recipients {
			updated := now
			if !r.UpdatedAt.IsZero() {
				updated = nanos(r.UpdatedAt)
			}
			// A recipient in a final state keeps it (the WHERE of the
			// upsert). New recipients go after the message's others.
			b.Queue(`INSERT INTO queue_recipients
				(queue_id, recipient, seq, via, state, attempts, next_attempt_at, last_reply, updated_at)
				VALUES ($1, $2, (SELECT coalesce(max(seq), -1) + 1 FROM queue_recipients WHERE queue_id = $1), $3, $4, $5, $6, $7, $8)
				ON CONFLICT (queue_id, recipient) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
					next_attempt_at = excluded.next_attempt_at, last_reply = excluded.last_reply, updated_at = excluded.updated_at
				WHERE queue_recipients.state IN `+openStates,
				d.QueueID, r.Address, r.Via, string(r.State), r.Attempts, nanos(r.NextAttemptAt), r.LastReply, updated)
		}
		events = append(events, d.Events...)
	}
	// Each message either leaves the queue (no open recipient left) or is
	// due when its earliest open recipient is; either way its lease ends.
	// The earliest times are computed once per message (MATERIALIZED),
	// then each message is found by its key: a subquery the planner
	// folded into the join was evaluated in every place it is used, next
	// to a hash join that read the whole messages table on every call.
	b.Queue(`WITH o AS MATERIALIZED (
			SELECT u.id, (SELECT min(r.next_attempt_at) FROM queue_recipients r WHERE r.queue_id = u.id AND r.state IN `+openStates+`) AS next
			FROM unnest($1::text[]) AS u(id))
		UPDATE messages m SET
			state = CASE WHEN o.next IS NULL THEN 'done' ELSE m.state END,
			finished_at = CASE WHEN o.next IS NULL THEN $2 ELSE m.finished_at END,
			next_attempt_at = coalesce(o.next, m.next_attempt_at),
			lease_owner = '', lease_until = 0
		FROM o
		WHERE m.queue_id = o.id AND (o.next IS NULL OR m.state = 'queued')`, ids, now)
	queueEvents(b, events, false)
	if err := s.batch(ctx, b); err != nil {
		return fmt.Errorf("recording %d deliveries: %w", len(deliveries), err)
	}
	return nil
}

// ReleaseLeases ends owner's leases of the queued messages named, so that
// any node claims them at once (a stopping delivery worker gives back what
// it had not started).
func (s *Store) ReleaseLeases(ctx context.Context, owner string, queueIDs []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE messages SET lease_owner = '', lease_until = 0
		WHERE lease_owner = $1 AND state = 'queued' AND queue_id = ANY($2)`, owner, queueIDs)
	if err != nil {
		return fmt.Errorf("releasing %d leases: %w", len(queueIDs), mapErr(err))
	}
	return nil
}

// MessageBody returns a message's content.
func (s *Store) MessageBody(ctx context.Context, queueID string) ([]byte, error) {
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM message_bodies WHERE queue_id = $1`, queueID).Scan(&body)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", queueID, mapErr(err))
	}
	return body, nil
}

// MessageBodies returns the contents of several messages in one round
// trip, by queue id; a message that is not there is left out.
func (s *Store) MessageBodies(ctx context.Context, queueIDs []string) (map[string][]byte, error) {
	bodies := make(map[string][]byte, len(queueIDs))
	b := &pgx.Batch{}
	b.Queue(customPlans)
	b.Queue(`SELECT queue_id, body FROM message_bodies WHERE queue_id = ANY($1)`, queueIDs).Query(func(rows pgx.Rows) error {
		_, err := collect(rows, nil, func(row scanner) (struct{}, error) {
			var id string
			var body []byte
			err := row.Scan(&id, &body)
			bodies[id] = body
			return struct{}{}, err
		})
		return err
	})
	if err := s.batch(ctx, b); err != nil {
		return nil, fmt.Errorf("bodies of %d messages: %w", len(queueIDs), err)
	}
	return bodies, nil
}

// QueueDepth counts messages not yet finished.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state = 'queued'`).Scan(&n)
	return n, mapErr(err)
}

// pruneFinishedSQL deletes finished messages with their recipients and
// bodies in one statement; the foreign keys are checked at its end, when
// the children are gone. The candidates come from messages_done
// (next_attempt_at of finished messages): a finished message keeps the
// time its last attempt was due, which is at or before it finished. A
// message deleted from the queue before its next attempt waits until that
// time has passed as well. Nodes may prune at the same time: SKIP LOCKED
// lets each take rows the other has not.
const pruneFinishedSQL = `WITH old AS (
		SELECT m.queue_id FROM messages m
		WHERE m.state = 'done' AND m.next_attempt_at < $1 AND m.finished_at < $1
		AND NOT EXISTS (SELECT 1 FROM mailbox_messages mm WHERE mm.queue_id = m.queue_id)
		LIMIT $2
		FOR UPDATE SKIP LOCKED),
	r AS (DELETE FROM queue_recipients WHERE queue_id IN (SELECT queue_id FROM old)),
	b AS (DELETE FROM message_bodies WHERE queue_id IN (SELECT queue_id FROM old))
	DELETE FROM messages WHERE queue_id IN (SELECT queue_id FROM old)`

// PruneFinished deletes up to limit messages that finished before before,
// with their recipients and bodies, and says how many it deleted. Messages
// with a mailbox copy stay (MailboxMessageBody reads the queue's body).
func (s *Store) PruneFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.DefaultPruneBatch
	}
	tag, err := s.pool.Exec(ctx, pruneFinishedSQL, nanos(before), limit)
	if err != nil {
		return 0, fmt.Errorf("pruning messages finished before %s: %w", before.UTC().Format(time.RFC3339), mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// MailboxMessages lists what a mailbox holds in every folder, newest first.
func (s *Store) MailboxMessages(ctx context.Context, mailboxID int64) ([]store.MailboxMessage, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT mm.id, mm.queue_id, m.sender, m.recipients, mm.recipient, mm.folder, m.subject, m.message_id, mm.delivered_at, m.size
		FROM mailbox_messages mm JOIN messages m ON m.queue_id = mm.queue_id
		WHERE mm.mailbox_id = $1 ORDER BY mm.id DESC`, mailboxID)
	list, err := collect(rows, err, func(row scanner) (mm store.MailboxMessage, err error) {
		var rcpts []byte
		var at int64
		if err = row.Scan(&mm.ID, &mm.QueueID, &mm.From, &rcpts, &mm.Recipient, &mm.Folder, &mm.Subject, &mm.MessageID, &at, &mm.Size); err != nil {
			return mm, err
		}
		mm.ReceivedAt = fromNanos(at)
		return mm, fromJSONList(rcpts, &mm.To)
	})
	if err != nil {
		return nil, fmt.Errorf("listing messages of mailbox %d: %w", mailboxID, err)
	}
	return list, nil
}

// MailboxMessageBody returns the content of one message of a mailbox.
func (s *Store) MailboxMessageBody(ctx context.Context, mailboxID, id int64) ([]byte, error) {
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT b.body FROM mailbox_messages mm JOIN message_bodies b ON b.queue_id = mm.queue_id
		WHERE mm.mailbox_id = $1 AND mm.id = $2`, mailboxID, id).Scan(&body)
	if err != nil {
		return nil, fmt.Errorf("message %d of mailbox %d: %w", id, mailboxID, mapErr(err))
	}
	return body, nil
}
