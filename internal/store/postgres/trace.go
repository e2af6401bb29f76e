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
//
// It first takes the trace lock, held until tx ends. Ids come from a
// sequence, and without the lock a transaction that drew lower ids could
// commit after one that drew higher ids: a cursor reader (usage metering,
// webhook dispatch) that had moved past the higher ids would never see the
// lower ones. With the lock, ids become visible in order. Callers write
// events last in their transaction, so the lock is held only for the
// insert and the commit. The lock and the insert go in one round trip.
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
// insertEvents does: the trace lock, then one insert for the events (with
// RETURNING id when returning is set), which it returns; nil when there
// are no events. b must run as one transaction (Store.batch, or a batch
// sent in a transaction), and the events must be its last statements, so
// that the lock is held for the insert and the commit only.
func queueEvents(b *pgx.Batch, events []trace.Event, returning bool) *pgx.QueuedQuery {
	if len(events) == 0 {
		return nil
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, lockTrace)
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

// SearchTrace finds events matching q, oldest first.
func (s *Store) SearchTrace(ctx context.Context, q trace.Query) ([]trace.Event, error) {
	query, args := searchTraceSQL(q)
	rows, err := s.pool.Query(ctx, query, args...)
	list, err := collect(rows, err, func(row scanner) (e trace.Event, err error) {
		var t int64
		err = row.Scan(&e.ID, &e.TenantID, &t, &e.QueueID, &e.MessageID, &e.Sender, &e.Recipient, &e.Event, &e.Status, &e.Detail, &e.ClientIP, &e.Subject, &e.Size)
		e.Time = fromNanos(t)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("searching trace: %w", err)
	}
	return list, nil
}

// searchTraceSQL is SearchTrace's statement and its arguments.
func searchTraceSQL(q trace.Query) (string, []any) {
	where := []string{"tenant_id = $1", "id > $2"}
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
// means 5000; callers repeat until fewer than limit are deleted, so that
// each transaction is short.
//
// Nodes may prune at the same time: SKIP LOCKED lets each take rows the
// other has not, rather than wait for them and then find them gone. The
// usage meter and the webhook dispatcher read events after their cursors,
// which only move forward by id; deleting old rows below a cursor changes
// nothing for them.
func (s *Store) PruneTrace(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		limit = 5000
	}
	tag, err := s.pool.Exec(ctx, pruneTraceSQL, nanos(before), limit)
	if err != nil {
		return 0, fmt.Errorf("pruning trace events before %s: %w", before.UTC().Format(time.RFC3339), mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
