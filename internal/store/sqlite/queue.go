package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// queueStmts are the statements every message goes through: the spool's
// Enqueue, the delivery worker's Claim, MessageBody and Finish, and the
// trace events they write. They are prepared once, at Open: parsing one of
// them costs SQLite more than running it, and preparing them on every call
// was a tenth of a node's CPU in W1 (docs/performance.md). The write
// statements are prepared on s.w, whose single connection keeps them, and
// used in a transaction through tx.StmtContext, which reuses the statement
// already prepared on the transaction's connection. body is on the read
// pool and is prepared once per read connection, as it is first used there.
type queueStmts struct {
	insMessage, insBody, insRcpt, insSentCopy *sql.Stmt // Enqueue
	claim, loadDue                            *sql.Stmt // Claim
	insCopy, upsertRcpt, finishMessages       *sql.Stmt // Finish
	insEvent                                  *sql.Stmt // every trace event of a message
	body                                      *sql.Stmt // MessageBody, on the read pool

	all []*sql.Stmt // to close
}

// prepare prepares the statements: the writes on w, the reads on r.
func (q *queueStmts) prepare(ctx context.Context, w, r *sql.DB) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		db    *sql.DB
		query string
	}{
		{&q.insMessage, w, insMessageSQL}, {&q.insBody, w, insBodySQL}, {&q.insRcpt, w, insRcptSQL}, {&q.insSentCopy, w, insSentCopySQL},
		{&q.claim, w, claimSQL}, {&q.loadDue, w, loadDueSQL},
		{&q.insCopy, w, insCopySQL}, {&q.upsertRcpt, w, upsertRcptSQL}, {&q.finishMessages, w, finishMessagesSQL},
		{&q.insEvent, w, insEventSQL},
		{&q.body, r, bodySQL},
	} {
		st, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("preparing %q: %w", strings.Join(strings.Fields(p.query), " "), err)
		}
		*p.stmt = st
		q.all = append(q.all, st)
	}
	return nil
}

func (q *queueStmts) close() error {
	var errs []error
	for _, st := range q.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

const (
	insMessageSQL = `INSERT INTO messages
		(queue_id, tenant_id, account_id, mailbox_id, sender, recipients, message_id, subject, client_ip, size, received_at, state, next_attempt_at,
			lease_owner, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`
	insBodySQL = `INSERT INTO message_bodies (queue_id, body) VALUES (?, ?)`
	// An address twice in one envelope is one recipient.
	insRcptSQL = `INSERT INTO queue_recipients (queue_id, recipient, seq, state, next_attempt_at, updated_at)
		VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (queue_id, recipient) DO NOTHING`
	// The sender is the copy's recipient: a Sent Items copy was not
	// delivered for any one recipient.
	insSentCopySQL = `INSERT INTO mailbox_messages (mailbox_id, queue_id, recipient, folder, delivered_at) VALUES (?, ?, ?, ?, ?)`
)

// Enqueue stores messages and their trace events in one transaction; the
// commit fsyncs the WAL once for the whole batch. A message sent by a
// mailbox gets its Sent Items copy in the same transaction.
func (s *Store) Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error {
	if discardSpool {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, s.q.insMessage)
		insBody := tx.StmtContext(ctx, s.q.insBody)
		insRcpt := tx.StmtContext(ctx, s.q.insRcpt)
		insSent := tx.StmtContext(ctx, s.q.insSentCopy)
		for _, m := range msgs {
			rcpts, err := json.Marshal(m.Recipients)
			if err != nil {
				return err
			}
			// The first attempt is due at once unless the sender is paced.
			due := m.ReceivedAt
			if !m.NotBefore.IsZero() {
				due = m.NotBefore
			}
			_, err = ins.ExecContext(ctx, m.QueueID, m.TenantID, m.AccountID, m.MailboxID, m.Sender, string(rcpts), m.MessageID, m.Subject,
				m.ClientIP, m.Size, nanos(m.ReceivedAt), nanos(due), m.LeaseOwner, nanos(m.LeaseUntil))
			if err == nil {
				_, err = insBody.ExecContext(ctx, m.QueueID, m.Body)
			}
			if err == nil && m.MailboxID != 0 {
				_, err = insSent.ExecContext(ctx, m.MailboxID, m.QueueID, m.Sender, store.FolderSentItems, nanos(m.ReceivedAt))
			}
			for i, r := range m.Recipients {
				if err == nil {
					_, err = insRcpt.ExecContext(ctx, m.QueueID, r, i, nanos(due), nanos(m.ReceivedAt))
				}
			}
			if err != nil {
				return fmt.Errorf("message %s: %w", m.QueueID, err)
			}
		}
		return s.insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("enqueueing %d messages: %w", len(msgs), err)
	}
	return nil
}

const claimSQL = `UPDATE messages SET lease_owner = ?, lease_until = ?
	WHERE queue_id IN (
		SELECT queue_id FROM messages
		WHERE state = 'queued' AND held = 0 AND next_attempt_at <= ? AND lease_until < ?
		ORDER BY next_attempt_at LIMIT ?)
	RETURNING queue_id, tenant_id, account_id, mailbox_id, sender, recipients, message_id, subject, client_ip, size, received_at`

// Claim leases due messages to owner; held messages wait for their
// release.
func (s *Store) Claim(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]*queue.Message, error) {
	var msgs []*queue.Message
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, s.q.claim).QueryContext(ctx, owner, nanos(now.Add(lease)), nanos(now), nanos(now), limit)
		if err != nil {
			return err
		}
		msgs, err = collect(rows, func(row scanner) (*queue.Message, error) {
			m := &queue.Message{}
			var rcpts string
			var received int64
			err := row.Scan(&m.QueueID, &m.TenantID, &m.AccountID, &m.MailboxID, &m.Sender, &rcpts, &m.MessageID, &m.Subject, &m.ClientIP, &m.Size, &received)
			if err != nil {
				return nil, err
			}
			m.ReceivedAt = fromNanos(received)
			return m, json.Unmarshal([]byte(rcpts), &m.Recipients)
		})
		if err != nil || len(msgs) == 0 {
			return err
		}
		return s.loadDue(ctx, tx, msgs, now)
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

// loadDueSQL takes the claimed queue ids as one JSON array, so that one
// prepared statement serves a claim of any size.
const loadDueSQL = `SELECT ` + recipientColumns + ` FROM queue_recipients
	WHERE state IN ('pending', 'deferred') AND next_attempt_at <= ? AND queue_id IN (SELECT value FROM json_each(?))
	ORDER BY queue_id, seq`

// loadDue fills in the recipients of claimed messages that are due at now.
func (s *Store) loadDue(ctx context.Context, tx *sql.Tx, msgs []*queue.Message, now time.Time) error {
	byID := make(map[string]*queue.Message, len(msgs))
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		byID[m.QueueID] = m
		ids[i] = m.QueueID
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := tx.StmtContext(ctx, s.q.loadDue).QueryContext(ctx, nanos(now), string(idList))
	if err != nil {
		return fmt.Errorf("loading due recipients: %w", err)
	}
	_, err = collect(rows, func(row scanner) (struct{}, error) {
		id, r, err := scanRecipient(row)
		if m := byID[id]; m != nil && err == nil {
			m.Due = append(m.Due, r)
		}
		return struct{}{}, err
	})
	return err
}

// QueueRecipients returns the delivery state of every recipient of a message.
func (s *Store) QueueRecipients(ctx context.Context, queueID string) ([]queue.Recipient, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE queue_id = ?`, queueID).Scan(&n); err != nil {
		return nil, fmt.Errorf("message %s: %w", queueID, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("message %s: %w", queueID, store.ErrNotFound)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+recipientColumns+` FROM queue_recipients WHERE queue_id = ? ORDER BY seq`, queueID)
	if err != nil {
		return nil, fmt.Errorf("recipients of %s: %w", queueID, err)
	}
	list, err := collect(rows, func(row scanner) (queue.Recipient, error) {
		_, r, err := scanRecipient(row)
		return r, err
	})
	if list == nil {
		list = []queue.Recipient{}
	}
	return list, err
}

const (
	insCopySQL = `INSERT INTO mailbox_messages (mailbox_id, queue_id, recipient, folder, delivered_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (mailbox_id, queue_id, folder) DO NOTHING`
	// A recipient in a final state keeps it (the WHERE of the upsert): a
	// late or repeated Finish cannot make a delivered recipient due again.
	// New recipients go after the message's others.
	upsertRcptSQL = `INSERT INTO queue_recipients
		(queue_id, recipient, seq, via, state, attempts, next_attempt_at, last_reply, updated_at)
		VALUES (?, ?, (SELECT coalesce(max(seq), -1) + 1 FROM queue_recipients WHERE queue_id = ?), ?, ?, ?, ?, ?, ?)
		ON CONFLICT (queue_id, recipient) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
			next_attempt_at = excluded.next_attempt_at, last_reply = excluded.last_reply, updated_at = excluded.updated_at
		WHERE queue_recipients.state IN ('pending', 'deferred')`
	// Then the messages of a Finish (a JSON array of their queue ids) are
	// released at once: a message with no recipient left open is done (in
	// whatever state it was), a queued one with open recipients is due at
	// the earliest of them.
	finishMessagesSQL = `UPDATE messages SET
			state = iif(o.open = 0, 'done', messages.state),
			finished_at = iif(o.open = 0, ?, messages.finished_at),
			next_attempt_at = iif(o.open = 0, messages.next_attempt_at, o.next),
			lease_owner = '', lease_until = 0
		FROM (SELECT j.value AS queue_id, count(r.queue_id) AS open, min(r.next_attempt_at) AS next
			FROM json_each(?) j LEFT JOIN queue_recipients r ON r.queue_id = j.value AND r.state IN ('pending', 'deferred')
			GROUP BY j.value) AS o
		WHERE messages.queue_id = o.queue_id AND (o.open = 0 OR messages.state = 'queued')`
)

// Finish records deliveries in one transaction: their mailbox copies,
// recipient states and trace events, then the state of their messages.
func (s *Store) Finish(ctx context.Context, deliveries []store.Delivery) error {
	if len(deliveries) == 0 || discardSpool {
		return nil
	}
	// Its statements are not cut short when the worker stops: an
	// interrupted statement ends the whole transaction it shares with
	// others, and the driver watches a cancellable context with a
	// goroutine for every statement.
	ctx = context.WithoutCancel(ctx)
	now := nanos(time.Now())
	ids := make([]string, len(deliveries))
	for i, d := range deliveries {
		ids[i] = d.QueueID
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("recording %d deliveries: %w", len(deliveries), err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		copyStmt := tx.StmtContext(ctx, s.q.insCopy)
		rcptStmt := tx.StmtContext(ctx, s.q.upsertRcpt)
		for _, d := range deliveries {
			for _, c := range d.Copies {
				if _, err := copyStmt.ExecContext(ctx, c.MailboxID, d.QueueID, c.Recipient, store.FolderInbox, now); err != nil {
					return fmt.Errorf("copy of %s to mailbox %d: %w", d.QueueID, c.MailboxID, err)
				}
			}
			for _, r := range d.Recipients {
				updated := now
				if !r.UpdatedAt.IsZero() {
					updated = nanos(r.UpdatedAt)
				}
				_, err := rcptStmt.ExecContext(ctx, d.QueueID, r.Address, d.QueueID, r.Via, string(r.State), r.Attempts,
					nanos(r.NextAttemptAt), r.LastReply, updated)
				if err != nil {
					return fmt.Errorf("recipient %s of %s: %w", r.Address, d.QueueID, err)
				}
			}
			if err := s.insertEvents(ctx, tx, d.Events); err != nil {
				return err
			}
		}
		_, err := tx.StmtContext(ctx, s.q.finishMessages).ExecContext(ctx, now, string(idList))
		return err
	})
	if err != nil {
		return fmt.Errorf("recording %d deliveries: %w", len(deliveries), err)
	}
	return nil
}

// ReleaseLeases ends owner's leases of the queued messages named, so that
// any node claims them at once (a stopping delivery worker gives back what
// it had not started).
func (s *Store) ReleaseLeases(ctx context.Context, owner string, queueIDs []string) error {
	ids, err := json.Marshal(queueIDs)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `UPDATE messages SET lease_owner = '', lease_until = 0
		WHERE lease_owner = ? AND state = 'queued' AND queue_id IN (SELECT value FROM json_each(?))`, owner, string(ids))
	if err != nil {
		return fmt.Errorf("releasing %d leases: %w", len(queueIDs), err)
	}
	return nil
}

const bodySQL = `SELECT body FROM message_bodies WHERE queue_id = ?`

// MessageBody returns a message's content.
func (s *Store) MessageBody(ctx context.Context, queueID string) ([]byte, error) {
	var body []byte
	err := s.q.body.QueryRowContext(ctx, queueID).Scan(&body)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", queueID, mapErr(err))
	}
	return body, nil
}

// QueueDepth counts messages not yet finished.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE state = 'queued'`).Scan(&n)
	return n, mapErr(err)
}

// finishedSQL picks finished messages to delete. It reads messages_due
// (state, next_attempt_at): a finished message keeps the time its last
// attempt was due, which is at or before it finished, so the range holds
// every candidate without an index written only for this. A message
// deleted from the queue before its next attempt waits until that time has
// passed as well.
const finishedSQL = `SELECT m.queue_id FROM messages m
	WHERE m.state = 'done' AND m.next_attempt_at < ?1 AND m.finished_at < ?1
	AND NOT EXISTS (SELECT 1 FROM mailbox_messages mm WHERE mm.queue_id = m.queue_id)
	LIMIT ?2`

// PruneFinished deletes up to limit messages that finished before before,
// with their recipients and bodies, in one transaction, and says how many
// it deleted. Messages with a mailbox copy stay (MailboxMessageBody reads
// the queue's body).
func (s *Store) PruneFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.DefaultPruneBatch
	}
	var n int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, finishedSQL, nanos(before), limit)
		if err != nil {
			return err
		}
		ids, err := collect(rows, func(row scanner) (id string, err error) {
			return id, row.Scan(&id)
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		list, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		// Children first: the foreign keys are checked at every statement.
		for _, table := range []string{"queue_recipients", "message_bodies", "messages"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE queue_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
		n = len(ids)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pruning messages finished before %s: %w", before.UTC().Format(time.RFC3339), mapErr(err))
	}
	return n, nil
}

// MailboxMessages lists what a mailbox holds in every folder, newest first.
func (s *Store) MailboxMessages(ctx context.Context, mailboxID int64) ([]store.MailboxMessage, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT mm.id, mm.queue_id, m.sender, m.recipients, mm.recipient, mm.folder, m.subject, m.message_id, mm.delivered_at, m.size
		FROM mailbox_messages mm JOIN messages m ON m.queue_id = mm.queue_id
		WHERE mm.mailbox_id = ? ORDER BY mm.id DESC`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("listing messages of mailbox %d: %w", mailboxID, err)
	}
	list, err := collect(rows, func(row scanner) (mm store.MailboxMessage, err error) {
		var rcpts string
		var at int64
		if err = row.Scan(&mm.ID, &mm.QueueID, &mm.From, &rcpts, &mm.Recipient, &mm.Folder, &mm.Subject, &mm.MessageID, &at, &mm.Size); err != nil {
			return mm, err
		}
		mm.ReceivedAt = fromNanos(at)
		return mm, json.Unmarshal([]byte(rcpts), &mm.To)
	})
	if list == nil {
		list = []store.MailboxMessage{}
	}
	return list, err
}

// MailboxMessageBody returns the content of one message of a mailbox.
func (s *Store) MailboxMessageBody(ctx context.Context, mailboxID, id int64) ([]byte, error) {
	var body []byte
	err := s.r.QueryRowContext(ctx, `SELECT b.body FROM mailbox_messages mm JOIN message_bodies b ON b.queue_id = mm.queue_id
		WHERE mm.mailbox_id = ? AND mm.id = ?`, mailboxID, id).Scan(&body)
	if err != nil {
		return nil, fmt.Errorf("message %d of mailbox %d: %w", id, mailboxID, mapErr(err))
	}
	return body, nil
}

// AddEvents stores trace events.
func (s *Store) AddEvents(ctx context.Context, events []trace.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertEvents(ctx, tx, events) })
}

const insEventSQL = `INSERT INTO trace_events
	(tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertEvents writes events in tx, a transaction of s.tx.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []trace.Event) error {
	if len(events) == 0 {
		return nil
	}
	stmt := tx.StmtContext(ctx, s.q.insEvent)
	for _, e := range events {
		_, err := stmt.ExecContext(ctx, e.TenantID, nanos(e.Time), e.QueueID, e.MessageID, e.Sender, e.Recipient,
			e.Event, e.Status, e.Detail, e.ClientIP, e.Subject, e.Size)
		if err != nil {
			return fmt.Errorf("trace event: %w", err)
		}
	}
	return nil
}

// SearchTrace finds events matching q, oldest first.
func (s *Store) SearchTrace(ctx context.Context, q trace.Query) ([]trace.Event, error) {
	query, args := searchTraceSQL(q)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("searching trace: %w", err)
	}
	list, err := collect(rows, func(row scanner) (e trace.Event, err error) {
		var t int64
		err = row.Scan(&e.ID, &e.TenantID, &t, &e.QueueID, &e.MessageID, &e.Sender, &e.Recipient, &e.Event, &e.Status, &e.Detail, &e.ClientIP, &e.Subject, &e.Size)
		e.Time = fromNanos(t)
		return e, err
	})
	if list == nil {
		list = []trace.Event{}
	}
	return list, err
}

// searchTraceSQL is SearchTrace's statement and its arguments.
func searchTraceSQL(q trace.Query) (string, []any) {
	where := []string{"tenant_id = ?", "id > ?"}
	args := []any{q.TenantID, q.AfterID}
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if q.Sender != "" {
		add("sender = ?", strings.ToLower(q.Sender))
	}
	if q.Recipient != "" {
		add("recipient = ?", strings.ToLower(q.Recipient))
	}
	if q.MessageID != "" {
		add("message_id = ?", q.MessageID)
	}
	if q.QueueID != "" {
		add("queue_id = ?", q.QueueID)
	}
	if q.Status != "" {
		// A recipient's status is that of its latest event: a Received
		// (Pending) event no longer counts once Delivered or Expanded follows.
		add(`status = ? AND (queue_id = '' OR NOT EXISTS (SELECT 1 FROM trace_events l
			WHERE l.queue_id = trace_events.queue_id AND l.recipient = trace_events.recipient AND l.id > trace_events.id))`, q.Status)
	}
	if q.Event != "" {
		if slices.Contains(trace.Events, q.Event) {
			// A known name goes in as a literal: only then can SQLite
			// use the partial index of alerts (trace_alert_time).
			where = append(where, "event = '"+q.Event+"'")
		} else {
			add("event = ?", q.Event)
		}
	}
	if q.ClientIP != "" {
		add("client_ip = ?", q.ClientIP)
	}
	if q.Subject != "" {
		// hve_fold lowers the stored subject the way Go lowers the filter:
		// SQLite's own LIKE folds only ASCII letters.
		add(`hve_fold(subject) LIKE ? ESCAPE '\'`, store.SubjectPattern(q.Subject, q.SubjectMatch))
	}
	if !q.Since.IsZero() {
		add("time >= ?", nanos(q.Since))
	}
	if !q.Until.IsZero() {
		add("time <= ?", nanos(q.Until))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	return `SELECT id, tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size
		FROM trace_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id LIMIT ?`, args
}

// pruneTraceSQL reads old events through trace_tenant_time (tenant_id,
// time), one tenant after the other: the recursive part steps from one
// tenant id in the index to the next, a lookup each, so that no index by
// time alone has to be written for every event.
const pruneTraceSQL = `DELETE FROM trace_events WHERE id IN (
	WITH RECURSIVE event_tenants(id) AS (
		SELECT min(tenant_id) FROM trace_events
		UNION ALL
		SELECT (SELECT min(tenant_id) FROM trace_events WHERE tenant_id > event_tenants.id) FROM event_tenants
		WHERE event_tenants.id IS NOT NULL)
	SELECT e.id FROM event_tenants t JOIN trace_events e ON e.tenant_id = t.id AND e.time < ?
	WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.queue_id = e.queue_id AND e.queue_id != '' AND m.state != 'done')
	LIMIT ?)`

// PruneTrace deletes up to limit trace events older than before, and says
// how many it deleted. Events of a message still in the queue stay, however
// old: they are its only history while it waits. A limit of 0 or less
// means store.DefaultPruneBatch; callers repeat until fewer than limit are deleted, so that
// each transaction holds the single writer only briefly.
//
// The usage meter and the webhook dispatcher read events after their
// cursors, which only move forward by id; deleting old rows below a cursor
// changes nothing for them.
func (s *Store) PruneTrace(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.DefaultPruneBatch
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, pruneTraceSQL, nanos(before), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning trace events before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return int(n), nil
}
