package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
	"hve/internal/trace"
)

// insertEvents writes trace events in tx and returns their ids, in order.
// Callers write events last in their transaction (see queueEvents). The
// pending mark and the insert go in one round trip.
func insertEvents(ctx context.Context, tx pgx.Tx, events []trace.Event) ([]int64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	insert := queueEvents(b, events, true)
	var ids []int64
	insert.Query(func(rows pgx.Rows) error {
		var err error
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("trace events: %w", mapErr(err))
	}
	return ids, nil
}

// queueEvents adds to b the statements that write trace events, as
// insertEvents does: the pending mark (see tracePendingKey), then one insert for
// the events (with RETURNING id when returning is set), which it returns;
// nil when there are no events. b must run as one transaction
// (Store.batch, or a batch sent in a transaction). The events should be its
// last statements: readers of trace wait for the mark to go, at the commit.
func queueEvents(b *pgx.Batch, events []trace.Event, returning bool) *pgx.QueuedQuery {
	if len(events) == 0 {
		return nil
	}
	b.Queue(markPendingSQL, tracePendingKey)
	// One statement for the batch: columns as arrays, unnested in order.
	n := len(events)
	var (
		tenant                                                                    = make([]int64, n)
		at, size                                                                  = make([]int64, n), make([]int64, n)
		queueID, messageID, sender, recipient, event, status, detail, ip, subject = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	)
	for i, e := range events {
		tenant[i], at[i], size[i] = e.TenantID, nanos(e.Time), e.Size
		queueID[i], messageID[i], sender[i], recipient[i] = e.QueueID, e.MessageID, e.Sender, e.Recipient
		event[i], status[i], detail[i], ip[i], subject[i] = e.Event, e.Status, e.Detail, e.ClientIP, e.Subject
	}
	sql := `INSERT INTO trace_events
		(tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[])`
	if returning {
		sql += ` RETURNING id`
	}
	return b.Queue(sql, tenant, at, queueID, messageID, sender, recipient, event, status, detail, ip, subject, size)
}

// Readers that follow trace with a cursor (usage metering, the webhook
// dispatcher, paging by id) must never see an event while one with a lower
// id can still appear: they would move past it and miss it for ever. Ids
// come from a sequence, drawn at the insert and made visible at the commit,
// so several writers commit them in any order. Rather than make writers
// take turns (a lock held to the commit, fsync included, would serialize
// every transaction that writes events, across nodes), each writer marks
// itself as pending and readers stop short of the lowest pending id:
//
//   - A writer first takes a shared advisory lock whose key is
//     tracePendingKey | L, L the sequence's last value: every id it then
//     draws is above L. The lock is held to the transaction's end, and
//     PostgreSQL releases it only once the commit is visible.
//   - A reader reads the sequence's last value S, then the lowest pending
//     mark M (pg_locks shows other sessions' advisory locks before they
//     commit), and reads, in a later statement (a later snapshot), events
//     up to min(S, M). A writer with ids at or below S drew them before S
//     was read, so it was marked before; if it was still running when the
//     marks were read its ids are above its mark, so above M, and if it
//     had ended its events are in the later snapshot. A writer marked
//     after the marks were read draws ids above S.
//
// Writers never wait for each other; readers lag a pending writer by its
// commit (milliseconds).
const (
	// tracePendingKey sets bit 62 of a mark's key, which keeps marks
	// (ids are far below it) apart from the store's other advisory locks.
	tracePendingKey int64 = 1 << 62
	markPendingSQL        = `SELECT pg_advisory_xact_lock_shared(coalesce(pg_sequence_last_value('trace_events_id_seq'), 0) | $1)`
	// settledLastSQL and settledMarksSQL leave the settled bound in the
	// transaction's setting hve.trace_settled, in this order, as two
	// statements; settledBound reads it in the statements that follow.
	settledLastSQL  = `SELECT set_config('hve.trace_settled', coalesce(pg_sequence_last_value('trace_events_id_seq'), 0)::text, true)`
	settledMarksSQL = `SELECT set_config('hve.trace_settled', least(current_setting('hve.trace_settled')::bigint,
		(SELECT min((((l.classid::bigint << 32) | l.objid::bigint) & ~$1::bigint)) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.classid::bigint >= ($1::bigint >> 32)
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())))::text, true)`
	settledBound = `current_setting('hve.trace_settled')::bigint`
)

// queueSettled adds to b, which must run as one transaction, the
// statements that compute the settled bound; statements queued after them
// may read events up to settledBound.
func queueSettled(b *pgx.Batch) {
	b.Queue(settledLastSQL)
	b.Queue(settledMarksSQL, tracePendingKey)
}

// AddEvents stores trace events.
func (s *Store) AddEvents(ctx context.Context, events []trace.Event) error {
	b := &pgx.Batch{}
	if queueEvents(b, events, false) == nil {
		return nil
	}
	if err := s.batch(ctx, b); err != nil {
		return fmt.Errorf("trace events: %w", err)
	}
	return nil
}

// SearchTrace finds events matching q, oldest first. Like MeterEvents it
// stops at the settled bound (see tracePendingKey), so that a client paging
// with AfterID to follow trace misses no event that commits late.
func (s *Store) SearchTrace(ctx context.Context, q trace.Query) ([]trace.Event, error) {
	query, args := searchTraceSQL(q)
	var list []trace.Event
	b := &pgx.Batch{}
	queueSettled(b)
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		list, err = collect(rows, nil, func(row scanner) (e trace.Event, err error) {
			var t int64
			err = row.Scan(&e.ID, &e.TenantID, &t, &e.QueueID, &e.MessageID, &e.Sender, &e.Recipient, &e.Event, &e.Status, &e.Detail, &e.ClientIP, &e.Subject, &e.Size)
			e.Time = fromNanos(t)
			return e, err
		})
		return err
	})
	if err := s.batch(ctx, b); err != nil {
		return nil, fmt.Errorf("searching trace: %w", err)
	}
	return list, nil
}

// searchTraceSQL is SearchTrace's statement and its arguments.
func searchTraceSQL(q trace.Query) (string, []any) {
	where := []string{"tenant_id = $1", "id > $2", "id <= " + settledBound}
	args := []any{q.TenantID, q.AfterID}
	// add appends a condition whose one parameter is written $?.
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", fmt.Sprintf("$%d", len(args))))
	}
	if q.Sender != "" {
		add("sender = $?", strings.ToLower(q.Sender))
	}
	if q.Recipient != "" {
		add("recipient = $?", strings.ToLower(q.Recipient))
	}
	if q.MessageID != "" {
		add("message_id = $?", q.MessageID)
	}
	if q.QueueID != "" {
		add("queue_id = $?", q.QueueID)
	}
	if q.Status != "" {
		// A recipient's status is that of its latest event: a Received
		// (Pending) event no longer counts once Delivered or Expanded follows.
		add(`status = $? AND (queue_id = '' OR NOT EXISTS (SELECT 1 FROM trace_events l
			WHERE l.queue_id = trace_events.queue_id AND l.recipient = trace_events.recipient AND l.id > trace_events.id))`, q.Status)
	}
	if q.Event != "" {
		if slices.Contains(trace.Events, q.Event) {
			// A known name goes in as a literal: a generic plan of a
			// parameter could not use the partial index of alerts
			// (trace_alert_time).
			where = append(where, "event = '"+q.Event+"'")
		} else {
			add("event = $?", q.Event)
		}
	}
	if q.ClientIP != "" {
		add("client_ip = $?", q.ClientIP)
	}
	if q.Subject != "" {
		// hve_fold lowers the stored subject the way Go lowers the filter.
		add(`hve_fold(subject) LIKE $? ESCAPE '\'`, store.SubjectPattern(q.Subject, q.SubjectMatch))
	}
	if !q.Since.IsZero() {
		add("time >= $?", nanos(q.Since))
	}
	if !q.Until.IsZero() {
		add("time <= $?", nanos(q.Until))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	return fmt.Sprintf(`SELECT id, tenant_id, time, queue_id, message_id, sender, recipient, event, status,
		detail, client_ip, subject, size FROM trace_events WHERE %s ORDER BY id LIMIT $%d`, strings.Join(where, " AND "), len(args)), args
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
	SELECT e.id FROM event_tenants t JOIN trace_events e ON e.tenant_id = t.id AND e.time < $1
	WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.queue_id = e.queue_id AND e.queue_id <> '' AND m.state <> 'done')
	LIMIT $2
	FOR UPDATE OF e SKIP LOCKED)`

// PruneTrace deletes up to limit trace events older than before, and says
// how many it deleted. Events of a message still in the queue stay, however
// old: they are its only history while it waits. A limit of 0 or less
// means store.DefaultPruneBatch; callers repeat until fewer than limit are deleted, so that
// each transaction is short.
//
// Nodes may prune at the same time: SKIP LOCKED lets each take rows the
// other has not, rather than wait for them and then find them gone. The
// usage meter and the webhook dispatcher read events after their cursors,
// which only move forward by id; deleting old rows below a cursor changes
// nothing for them.
func (s *Store) PruneTrace(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = store.DefaultPruneBatch
	}
	tag, err := s.pool.Exec(ctx, pruneTraceSQL, nanos(before), limit)
	if err != nil {
		return 0, fmt.Errorf("pruning trace events before %s: %w", before.UTC().Format(time.RFC3339), mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
