package sqlite

// Queue control: admins list a tenant's queued messages and hold, release,
// retry or delete them. Every action writes trace events in the same
// transaction as the change.

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"hve/internal/store"
	"hve/internal/trace"
)

// openStates is the SQL list of the recipient states delivery still has
// to deal with.
const openStates = `('pending', 'deferred')`

// rcptDomain is the domain part of queue_recipients.recipient (r).
const rcptDomain = `substr(r.recipient, instr(r.recipient, '@') + 1)`

// QueueItems lists a tenant's queued messages matching q, oldest first.
func (s *Store) QueueItems(ctx context.Context, q store.QueueQuery) ([]store.QueueItem, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	now := nanos(q.Now)
	where := []string{"m.tenant_id = ?", "m.state = 'queued'", "m.queue_id > ?"}
	args := []any{q.TenantID, q.After}
	if q.QueueID != "" {
		where = append(where, "m.queue_id = ?")
		args = append(args, q.QueueID)
	}
	const deferred = `EXISTS (SELECT 1 FROM queue_recipients r WHERE r.queue_id = m.queue_id AND r.state = 'deferred')`
	switch q.Status {
	case "":
	case store.QueueHeld:
		where = append(where, "m.held = 1")
	case store.QueueActive:
		where = append(where, "m.held = 0", "m.lease_until > ?")
		args = append(args, now)
	case store.QueueDeferred:
		where = append(where, "m.held = 0", "m.lease_until <= ?", deferred)
		args = append(args, now)
	case store.QueuePending:
		where = append(where, "m.held = 0", "m.lease_until <= ?", "NOT "+deferred)
		args = append(args, now)
	default:
		return nil, fmt.Errorf("%w: queue status %q: use held, active, deferred or pending", store.ErrInvalid, q.Status)
	}
	if q.Domain != "" {
		where = append(where, `EXISTS (SELECT 1 FROM queue_recipients r WHERE r.queue_id = m.queue_id AND r.state IN `+openStates+
			` AND `+rcptDomain+` = ?)`)
		args = append(args, strings.ToLower(q.Domain))
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT m.queue_id, m.message_id, m.sender, m.subject, m.size, m.received_at,
		m.held, m.held_by, m.lease_until, m.next_attempt_at
		FROM messages m WHERE `+strings.Join(where, " AND ")+` ORDER BY m.queue_id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing the queue: %w", err)
	}
	type row struct {
		item       store.QueueItem
		held       bool
		leaseUntil int64
	}
	list, err := collect(rows, func(sc scanner) (*row, error) {
		r := &row{}
		var received, next int64
		err := sc.Scan(&r.item.QueueID, &r.item.MessageID, &r.item.Sender, &r.item.Subject, &r.item.Size, &received,
			&r.held, &r.item.HeldBy, &r.leaseUntil, &next)
		r.item.ReceivedAt, r.item.NextAttemptAt = fromNanos(received), fromNanos(next)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing the queue: %w", err)
	}
	items := make([]store.QueueItem, 0, len(list))
	if len(list) == 0 {
		return items, nil
	}
	byID := make(map[string]*row, len(list))
	ids := make([]any, 0, len(list))
	for _, r := range list {
		byID[r.item.QueueID] = r
		ids = append(ids, r.item.QueueID)
	}
	// Naming one message shows all its recipients; a list shows the open ones.
	only := ` AND state IN ` + openStates
	if q.QueueID != "" {
		only = ""
	}
	rrows, err := s.r.QueryContext(ctx, `SELECT `+recipientColumns+` FROM queue_recipients
		WHERE queue_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`+only+` ORDER BY queue_id, seq`, ids...)
	if err != nil {
		return nil, fmt.Errorf("listing the queue's recipients: %w", err)
	}
	_, err = collect(rrows, func(sc scanner) (struct{}, error) {
		id, rc, err := scanRecipient(sc)
		if r := byID[id]; r != nil && err == nil {
			r.item.Recipients = append(r.item.Recipients, rc)
		}
		return struct{}{}, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing the queue's recipients: %w", err)
	}
	for _, r := range list {
		it := r.item
		it.Summarize(r.held, r.leaseUntil > now)
		items = append(items, it)
	}
	return items, nil
}

// ControlQueue applies an admin's action to the queue.
func (s *Store) ControlQueue(ctx context.Context, c store.QueueControl) (int, error) {
	if err := c.Check(); err != nil {
		return 0, err
	}
	if c.All {
		n, err := s.retryAll(ctx, c)
		if err != nil {
			return n, fmt.Errorf("retry of the queue: %w", err)
		}
		return n, nil
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error { return s.controlOne(ctx, tx, c) }); err != nil {
		return 0, fmt.Errorf("%s of %s: %w", c.Action, c.QueueID, err)
	}
	return 1, nil
}

// controlOne applies c to the message c.QueueID.
func (s *Store) controlOne(ctx context.Context, tx *sql.Tx, c store.QueueControl) error {
	m := store.QueuedMessage{QueueID: c.QueueID}
	err := tx.QueryRowContext(ctx, `SELECT message_id, sender, subject, client_ip, size, held, held_by FROM messages
		WHERE queue_id = ? AND tenant_id = ? AND state = 'queued'`, c.QueueID, c.TenantID).
		Scan(&m.MessageID, &m.Sender, &m.Subject, &m.ClientIP, &m.Size, &m.Held, &m.HeldBy)
	if err == sql.ErrNoRows {
		return store.NotQueuedError(c.QueueID)
	}
	if err != nil {
		return err
	}
	rcpts, err := openRecipients(ctx, tx, c.QueueID)
	if err != nil {
		return err
	}
	if err := m.Applies(c); err != nil {
		return err
	}
	now := nanos(c.Now)
	switch c.Action {
	case store.QueueHold:
		_, err = tx.ExecContext(ctx, `UPDATE messages SET held = 1, held_by = ?, held_at = ? WHERE queue_id = ?`, c.Actor, now, c.QueueID)
	case store.QueueRelease:
		_, err = tx.ExecContext(ctx, `UPDATE messages SET held = 0, held_by = '', held_at = 0 WHERE queue_id = ?`, c.QueueID)
		if err == nil {
			err = makeDue(ctx, tx, c.QueueID, now)
		}
	case store.QueueRetry:
		err = makeDue(ctx, tx, c.QueueID, now)
	case store.QueueDelete:
		_, err = tx.ExecContext(ctx, `UPDATE queue_recipients SET state = 'failed', last_reply = ?, next_attempt_at = ?, updated_at = ?
			WHERE queue_id = ? AND state IN `+openStates, store.DeleteReason(c.Actor), now, now, c.QueueID)
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE messages SET state = 'done', finished_at = ?, lease_owner = '', lease_until = 0,
				held = 0, held_by = '', held_at = 0 WHERE queue_id = ?`, now, c.QueueID)
		}
	}
	if err != nil {
		return err
	}
	return s.insertEvents(ctx, tx, m.ControlEvents(c, rcpts))
}

// openRecipients lists the addresses of a message's open recipients.
func openRecipients(ctx context.Context, tx *sql.Tx, queueID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT recipient FROM queue_recipients WHERE queue_id = ? AND state IN `+openStates+` ORDER BY seq`, queueID)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(sc scanner) (string, error) {
		var r string
		return r, sc.Scan(&r)
	})
}

// makeDue brings the next attempt of a message's open recipients forward
// to now; their attempt counts stay, and so does their place in the retry
// schedule.
func makeDue(ctx context.Context, tx *sql.Tx, queueID string, now int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE queue_recipients SET next_attempt_at = ?
		WHERE queue_id = ? AND state IN `+openStates+` AND next_attempt_at > ?`, now, queueID, now)
	if err == nil {
		_, err = tx.ExecContext(ctx, `UPDATE messages SET next_attempt_at = min(next_attempt_at, ?) WHERE queue_id = ?`, now, queueID)
	}
	return err
}

// retryChunk is how many recipients one transaction of a retry of the
// whole queue moves: a large queue is never read into memory at once,
// nor locked in one long transaction.
const retryChunk = 1000

// retryPos is where a retry of the whole queue has got to.
type retryPos struct {
	queueID string
	seq     int
}

// retryAll makes every open recipient of the tenant's queued messages
// that are not held due now (of c.Domain, if set), a chunk at a time, and
// returns how many messages changed. Only recipients due later get a
// Retried event.
func (s *Store) retryAll(ctx context.Context, c store.QueueControl) (int, error) {
	var pos retryPos
	n := 0
	for {
		var moved int
		var last string
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var err error
			moved, last, pos, err = s.retryAllChunk(ctx, tx, c, pos)
			return err
		})
		if err != nil {
			return n, err
		}
		n += moved
		if last == "" {
			return n, nil
		}
	}
}

// retryAllChunk moves up to retryChunk recipients after pos. It returns
// how many messages it changed (a message continued from the previous
// chunk is not counted again), the last queue id it saw ("" when there was
// nothing left) and the position to go on from.
func (s *Store) retryAllChunk(ctx context.Context, tx *sql.Tx, c store.QueueControl, pos retryPos) (int, string, retryPos, error) {
	now := nanos(c.Now)
	cond := `m.tenant_id = ? AND m.state = 'queued' AND m.held = 0 AND r.state IN ` + openStates + ` AND r.next_attempt_at > ?
		AND (m.queue_id > ? OR m.queue_id = ? AND r.seq > ?)`
	args := []any{c.TenantID, now, pos.queueID, pos.queueID, pos.seq}
	if c.Domain != "" {
		cond += ` AND ` + rcptDomain + ` = ?`
		args = append(args, strings.ToLower(c.Domain))
	}
	args = append(args, retryChunk)
	rows, err := tx.QueryContext(ctx, `SELECT m.queue_id, m.message_id, m.sender, m.subject, m.client_ip, m.size, r.recipient, r.seq
		FROM messages m JOIN queue_recipients r ON r.queue_id = m.queue_id WHERE `+cond+` ORDER BY m.queue_id, r.seq LIMIT ?`, args...)
	if err != nil {
		return 0, "", pos, err
	}
	type due struct {
		m    store.QueuedMessage
		rcpt string
		seq  int
	}
	list, err := collect(rows, func(sc scanner) (due, error) {
		var d due
		return d, sc.Scan(&d.m.QueueID, &d.m.MessageID, &d.m.Sender, &d.m.Subject, &d.m.ClientIP, &d.m.Size, &d.rcpt, &d.seq)
	})
	if err != nil || len(list) == 0 {
		return 0, "", pos, err
	}
	updRcpt, err := tx.PrepareContext(ctx, `UPDATE queue_recipients SET next_attempt_at = ? WHERE queue_id = ? AND recipient = ?`)
	if err != nil {
		return 0, "", pos, err
	}
	defer updRcpt.Close()
	updMsg, err := tx.PrepareContext(ctx, `UPDATE messages SET next_attempt_at = min(next_attempt_at, ?) WHERE queue_id = ?`)
	if err != nil {
		return 0, "", pos, err
	}
	defer updMsg.Close()
	events := make([]trace.Event, 0, len(list))
	n := 0
	prev := pos.queueID
	for _, d := range list {
		if _, err := updRcpt.ExecContext(ctx, now, d.m.QueueID, d.rcpt); err != nil {
			return 0, "", pos, err
		}
		if d.m.QueueID != prev {
			n++
			prev = d.m.QueueID
			if _, err := updMsg.ExecContext(ctx, now, d.m.QueueID); err != nil {
				return 0, "", pos, err
			}
		}
		events = append(events, d.m.ControlEvents(c, []string{d.rcpt})...)
	}
	last := list[len(list)-1]
	return n, last.m.QueueID, retryPos{queueID: last.m.QueueID, seq: last.seq}, s.insertEvents(ctx, tx, events)
}
