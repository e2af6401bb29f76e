package postgres

// Queue control: admins list a tenant's queued messages and hold, release,
// retry or delete them. Every action writes trace events in the same
// transaction as the change.
//
// An action locks the rows of the messages it changes before it reads
// them (FOR UPDATE), in queue id order as Finish does: a delivery node may
// be finishing the same message, and another admin acting on it; each then
// waits for the other and sees its outcome.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
	"hve/internal/trace"
)

// openStates is the SQL list of the recipient states delivery still has
// to deal with.
const openStates = `('pending', 'deferred')`

// rcptDomain is the domain part of queue_recipients.recipient (r).
const rcptDomain = `split_part(r.recipient, '@', 2)`

// QueueItems lists a tenant's queued messages matching q, oldest first.
func (s *Store) QueueItems(ctx context.Context, q store.QueueQuery) ([]store.QueueItem, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	now := nanos(q.Now)
	where := []string{"m.tenant_id = $1", "m.state = 'queued'", "m.queue_id > $2"}
	args := []any{q.TenantID, q.After}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(args))))
	}
	if q.QueueID != "" {
		add("m.queue_id = $?", q.QueueID)
	}
	const deferred = `EXISTS (SELECT 1 FROM queue_recipients r WHERE r.queue_id = m.queue_id AND r.state = 'deferred')`
	switch q.Status {
	case "":
	case store.QueueHeld:
		where = append(where, "m.held")
	case store.QueueActive:
		add("NOT m.held AND m.lease_until > $?", now)
	case store.QueueDeferred:
		add("NOT m.held AND m.lease_until <= $? AND "+deferred, now)
	case store.QueuePending:
		add("NOT m.held AND m.lease_until <= $? AND NOT "+deferred, now)
	default:
		return nil, fmt.Errorf("%w: queue status %q: use held, active, deferred or pending", store.ErrInvalid, q.Status)
	}
	if q.Domain != "" {
		add(`EXISTS (SELECT 1 FROM queue_recipients r WHERE r.queue_id = m.queue_id AND r.state IN `+openStates+
			` AND `+rcptDomain+` = $?)`, strings.ToLower(q.Domain))
	}
	args = append(args, limit)
	type row struct {
		item       store.QueueItem
		held       bool
		leaseUntil int64
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT m.queue_id, m.message_id, m.sender, m.subject, m.size, m.received_at,
		m.held, m.held_by, m.lease_until, m.next_attempt_at
		FROM messages m WHERE %s ORDER BY m.queue_id LIMIT $%d`, strings.Join(where, " AND "), len(args)), args...)
	list, err := collect(rows, err, func(sc scanner) (*row, error) {
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
	ids := make([]string, 0, len(list))
	for _, r := range list {
		byID[r.item.QueueID] = r
		ids = append(ids, r.item.QueueID)
	}
	// Naming one message shows all its recipients; a list shows the open ones.
	only := ` AND state IN ` + openStates
	if q.QueueID != "" {
		only = ""
	}
	rrows, err := s.pool.Query(ctx, `SELECT `+recipientColumns+` FROM queue_recipients
		WHERE queue_id = ANY($1)`+only+` ORDER BY queue_id, seq`, ids)
	_, err = collect(rrows, err, func(sc scanner) (struct{}, error) {
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
	if err := s.tx(ctx, func(tx pgx.Tx) error { return controlOne(ctx, tx, c) }); err != nil {
		return 0, fmt.Errorf("%s of %s: %w", c.Action, c.QueueID, err)
	}
	return 1, nil
}

// controlOne applies c to the message c.QueueID.
func controlOne(ctx context.Context, tx pgx.Tx, c store.QueueControl) error {
	m := store.QueuedMessage{QueueID: c.QueueID}
	err := tx.QueryRow(ctx, `SELECT message_id, sender, subject, client_ip, size, held, held_by FROM messages
		WHERE queue_id = $1 AND tenant_id = $2 AND state = 'queued' FOR UPDATE`, c.QueueID, c.TenantID).
		Scan(&m.MessageID, &m.Sender, &m.Subject, &m.ClientIP, &m.Size, &m.Held, &m.HeldBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.NotQueuedError(c.QueueID)
	}
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT recipient FROM queue_recipients WHERE queue_id = $1 AND state IN `+openStates+` ORDER BY seq`, c.QueueID)
	rcpts, err := collect(rows, err, func(sc scanner) (string, error) {
		var r string
		return r, sc.Scan(&r)
	})
	if err != nil {
		return err
	}
	if err := m.Applies(c); err != nil {
		return err
	}
	now := nanos(c.Now)
	switch c.Action {
	case store.QueueHold:
		_, err = tx.Exec(ctx, `UPDATE messages SET held = true, held_by = $1, held_at = $2 WHERE queue_id = $3`, c.Actor, now, c.QueueID)
	case store.QueueRelease:
		_, err = tx.Exec(ctx, `UPDATE messages SET held = false, held_by = '', held_at = 0 WHERE queue_id = $1`, c.QueueID)
		if err == nil {
			err = makeDue(ctx, tx, c.QueueID, now)
		}
	case store.QueueRetry:
		err = makeDue(ctx, tx, c.QueueID, now)
	case store.QueueDelete:
		_, err = tx.Exec(ctx, `UPDATE queue_recipients SET state = 'failed', last_reply = $1, next_attempt_at = $2, updated_at = $2
			WHERE queue_id = $3 AND state IN `+openStates, store.DeleteReason(c.Actor), now, c.QueueID)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE messages SET state = 'done', finished_at = $1, lease_owner = '', lease_until = 0,
				held = false, held_by = '', held_at = 0 WHERE queue_id = $2`, now, c.QueueID)
		}
	}
	if err != nil {
		return err
	}
	_, err = insertEvents(ctx, tx, m.ControlEvents(c, rcpts))
	return err
}

// makeDue brings the next attempt of a message's open recipients forward
// to now; their attempt counts stay, and so does their place in the retry
// schedule.
func makeDue(ctx context.Context, tx pgx.Tx, queueID string, now int64) error {
	_, err := tx.Exec(ctx, `UPDATE queue_recipients SET next_attempt_at = $1
		WHERE queue_id = $2 AND state IN `+openStates+` AND next_attempt_at > $1`, now, queueID)
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE messages SET next_attempt_at = least(next_attempt_at, $1) WHERE queue_id = $2`, now, queueID)
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
	seq     int64
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
		err := s.tx(ctx, func(tx pgx.Tx) error {
			var err error
			moved, last, pos, err = retryAllChunk(ctx, tx, c, pos)
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
//
// It locks the rows it selects, messages and recipients, in queue id order
// (FOR UPDATE OF m, r): a row a delivery node changed meanwhile is read
// again once locked, so that a recipient delivered since is left alone.
func retryAllChunk(ctx context.Context, tx pgx.Tx, c store.QueueControl, pos retryPos) (int, string, retryPos, error) {
	now := nanos(c.Now)
	cond := `m.tenant_id = $1 AND m.state = 'queued' AND NOT m.held AND r.state IN ` + openStates + ` AND r.next_attempt_at > $2
		AND (m.queue_id > $3 OR m.queue_id = $3 AND r.seq > $4)`
	args := []any{c.TenantID, now, pos.queueID, pos.seq}
	if c.Domain != "" {
		args = append(args, strings.ToLower(c.Domain))
		cond += fmt.Sprintf(` AND `+rcptDomain+` = $%d`, len(args))
	}
	args = append(args, retryChunk)
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT m.queue_id, m.message_id, m.sender, m.subject, m.client_ip, m.size, r.recipient, r.seq
		FROM messages m JOIN queue_recipients r ON r.queue_id = m.queue_id WHERE %s ORDER BY m.queue_id, r.seq LIMIT $%d
		FOR UPDATE OF m, r`, cond, len(args)), args...)
	type due struct {
		m    store.QueuedMessage
		rcpt string
		seq  int64
	}
	list, err := collect(rows, err, func(sc scanner) (due, error) {
		var d due
		return d, sc.Scan(&d.m.QueueID, &d.m.MessageID, &d.m.Sender, &d.m.Subject, &d.m.ClientIP, &d.m.Size, &d.rcpt, &d.seq)
	})
	if err != nil || len(list) == 0 {
		return 0, "", pos, err
	}
	var rcptQueue, rcptAddr, msgs []string
	events := make([]trace.Event, 0, len(list))
	prev := pos.queueID
	for _, d := range list {
		rcptQueue, rcptAddr = append(rcptQueue, d.m.QueueID), append(rcptAddr, d.rcpt)
		if d.m.QueueID != prev {
			prev = d.m.QueueID
			msgs = append(msgs, d.m.QueueID)
		}
		events = append(events, d.m.ControlEvents(c, []string{d.rcpt})...)
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE queue_recipients SET next_attempt_at = $1
		WHERE (queue_id, recipient) IN (SELECT * FROM unnest($2::text[], $3::text[]))`, now, rcptQueue, rcptAddr)
	b.Queue(`UPDATE messages SET next_attempt_at = least(next_attempt_at, $1) WHERE queue_id = ANY($2)`, now, msgs)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, "", pos, err
	}
	if _, err := insertEvents(ctx, tx, events); err != nil {
		return 0, "", pos, err
	}
	last := list[len(list)-1]
	return len(msgs), last.m.QueueID, retryPos{queueID: last.m.QueueID, seq: last.seq}, nil
}
