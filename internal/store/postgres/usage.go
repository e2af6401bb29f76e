package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
)

// UsageCursor returns the id of the last trace event counted in usage.
func (s *Store) UsageCursor(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT last_event_id FROM usage_cursor WHERE id = 1`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the usage cursor: %w", mapErr(err))
	}
	return id, nil
}

// MeterEvents returns trace events after afterID, marking the first
// Received event of each message.
//
// It reads no further than the settled bound (see tracePendingKey), so that no
// lower id can appear after a higher one was returned.
func (s *Store) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	// A message's Received events may straddle two pages; asking the
	// table whether an earlier one exists (an index range on queue_id)
	// counts the message exactly once whatever the page boundaries.
	// "p.id + 0" keeps the primary key out of that: without statistics (a
	// table that grew since it was last analyzed) the planner otherwise
	// ANDs the queue_id range with a bitmap of every id below e.id, which
	// reads the whole table below each event and grows with it.
	var list []store.MeterEvent
	b := &pgx.Batch{}
	b.Queue(customPlans)
	queueSettled(b)
	b.Queue(`
		SELECT e.id, e.tenant_id, e.time, e.queue_id, e.message_id, e.sender, e.recipient, e.event, e.status, e.detail,
			e.client_ip, e.subject, e.size,
			e.event = 'Received' AND NOT EXISTS (SELECT 1 FROM trace_events p
				WHERE p.queue_id = e.queue_id AND p.event = 'Received' AND p.id + 0 < e.id)
		FROM trace_events e WHERE e.id > $1 AND e.id <= `+settledBound+` ORDER BY e.id LIMIT $2`, afterID, limit).Query(func(rows pgx.Rows) error {
		var err error
		list, err = collect(rows, nil, func(row scanner) (m store.MeterEvent, err error) {
			var t int64
			e := &m.Event
			err = row.Scan(&e.ID, &e.TenantID, &t, &e.QueueID, &e.MessageID, &e.Sender, &e.Recipient, &e.Event, &e.Status, &e.Detail,
				&e.ClientIP, &e.Subject, &e.Size, &m.FirstReceived)
			e.Time = fromNanos(t)
			return m, err
		})
		return err
	})
	if err := s.batch(ctx, b); err != nil {
		return nil, fmt.Errorf("reading trace for metering: %w", err)
	}
	return list, nil
}

// AddUsage adds rows to the hourly counters and moves the cursor, in one
// transaction.
//
// The cursor is moved first: its row lock makes a racing AddUsage from the
// same cursor wait for this one's commit, then find the cursor moved and
// change nothing (ErrStale).
func (s *Store) AddUsage(ctx context.Context, from, to int64, rows []store.UsageRow) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE usage_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id = $2`, to, from)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return store.ErrStale
		}
		// One statement per row rather than one for the batch: rows may
		// repeat a counter, which a single ON CONFLICT DO UPDATE cannot
		// touch twice.
		var b pgx.Batch
		for _, r := range rows {
			hour := nanos(r.Hour.UTC().Truncate(time.Hour))
			account := strings.ToLower(r.Account)
			b.Queue(`INSERT INTO usage_hours
				(tenant_id, account, hour, messages, recipients, expanded_recipients, bytes, failures, refusals)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (tenant_id, hour, account) DO UPDATE SET
					messages = usage_hours.messages + excluded.messages,
					recipients = usage_hours.recipients + excluded.recipients,
					expanded_recipients = usage_hours.expanded_recipients + excluded.expanded_recipients,
					bytes = usage_hours.bytes + excluded.bytes,
					failures = usage_hours.failures + excluded.failures,
					refusals = usage_hours.refusals + excluded.refusals`,
				r.TenantID, account, hour, r.Messages, r.Recipients, r.ExpandedRecipients, r.Bytes, r.Failures, r.Refusals)
			for reason, n := range r.RefusalsByReason {
				b.Queue(`INSERT INTO usage_refusals (tenant_id, account, hour, reason, count)
					VALUES ($1, $2, $3, $4, $5)
					ON CONFLICT (tenant_id, hour, account, reason) DO UPDATE SET count = usage_refusals.count + excluded.count`,
					r.TenantID, account, hour, reason, n)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("usage counters: %w", err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrStale) {
		return fmt.Errorf("adding usage up to trace event %d: %w", to, err)
	}
	return err
}

// UsageHours returns a tenant's hourly counters.
func (s *Store) UsageHours(ctx context.Context, q store.UsageQuery) ([]store.UsageRow, error) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where := []string{"h.tenant_id = " + arg(q.TenantID)}
	if q.Account != "" {
		where = append(where, "h.account = "+arg(strings.ToLower(q.Account)))
	}
	if !q.Since.IsZero() {
		where = append(where, "h.hour >= "+arg(nanos(q.Since.UTC().Truncate(time.Hour))))
	}
	if !q.Until.IsZero() {
		where = append(where, "h.hour < "+arg(nanos(q.Until)))
	}
	// One statement, so that the counters and their refusals by reason
	// come from one snapshot (AddUsage changes both in one transaction).
	rows, err := s.pool.Query(ctx, `
		SELECT h.account, h.hour, h.messages, h.recipients, h.expanded_recipients, h.bytes, h.failures, h.refusals,
			coalesce((SELECT jsonb_object_agg(r.reason, r.count) FROM usage_refusals r
				WHERE r.tenant_id = h.tenant_id AND r.hour = h.hour AND r.account = h.account), '{}')
		FROM usage_hours h WHERE `+strings.Join(where, " AND ")+` ORDER BY h.hour, h.account`, args...)
	list, err := collect(rows, err, func(row scanner) (r store.UsageRow, err error) {
		var hour int64
		err = row.Scan(&r.Account, &hour, &r.Messages, &r.Recipients, &r.ExpandedRecipients, &r.Bytes, &r.Failures, &r.Refusals,
			&r.RefusalsByReason)
		r.TenantID, r.Hour = q.TenantID, fromNanos(hour)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	return list, nil
}

const reportJobColumns = `id, tenant_id, account, since, until, state, rows, error, lease_owner, created_at, finished_at`

func scanReportJob(row scanner) (j store.ReportJob, err error) {
	var since, until, created, finished int64
	err = row.Scan(&j.ID, &j.TenantID, &j.Account, &since, &until, &j.State, &j.Rows, &j.Error, &j.Owner, &created, &finished)
	j.Since, j.Until, j.CreatedAt, j.FinishedAt = fromNanos(since), fromNanos(until), fromNanos(created), fromNanos(finished)
	return j, err
}

// CreateReportJob stores a queued job.
func (s *Store) CreateReportJob(ctx context.Context, j store.ReportJob) (store.ReportJob, error) {
	j.State, j.CreatedAt, j.Account = store.ReportQueued, time.Now().UTC(), strings.ToLower(j.Account)
	err := s.pool.QueryRow(ctx, `INSERT INTO report_jobs (tenant_id, account, since, until, state, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		j.TenantID, j.Account, nanos(j.Since), nanos(j.Until), j.State, nanos(j.CreatedAt)).Scan(&j.ID)
	if err != nil {
		return store.ReportJob{}, fmt.Errorf("creating report job: %w", mapErr(err))
	}
	return j, nil
}

// ReportJob returns one of the tenant's jobs.
func (s *Store) ReportJob(ctx context.Context, tenantID, id int64) (store.ReportJob, error) {
	j, err := scanReportJob(s.pool.QueryRow(ctx, `SELECT `+reportJobColumns+` FROM report_jobs WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	if err != nil {
		return store.ReportJob{}, fmt.Errorf("report %d: %w", id, mapErr(err))
	}
	return j, nil
}

// ClaimReportJob leases the oldest job that is waiting or whose runner
// died. SKIP LOCKED lets racing nodes each take a different job instead of
// queueing behind one another's claim; the lock also keeps the job's owner
// from writing a chunk while its earlier chunks are removed.
func (s *Store) ClaimReportJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (store.ReportJob, error) {
	var j store.ReportJob
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		j, err = scanReportJob(tx.QueryRow(ctx, `
			UPDATE report_jobs SET state = $1, lease_owner = $2, lease_until = $3
			WHERE id = (SELECT id FROM report_jobs
				WHERE state = $4 OR (state = $1 AND lease_until < $5)
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING `+reportJobColumns,
			store.ReportRunning, owner, nanos(now.Add(lease)), store.ReportQueued, nanos(now)))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM report_chunks WHERE job_id = $1`, j.ID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.ReportJob{}, err
	}
	if err != nil {
		return store.ReportJob{}, fmt.Errorf("claiming a report job: %w", err)
	}
	return j, nil
}

// holdLease extends owner's lease of a running job, or fails with ErrStale.
// Its row lock keeps another node from taking the job over until tx ends.
func holdLease(ctx context.Context, tx pgx.Tx, id int64, owner string, until time.Time) error {
	tag, err := tx.Exec(ctx, `UPDATE report_jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = $4`,
		nanos(until), id, owner, store.ReportRunning)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return store.ErrStale
	}
	return nil
}

// AddReportChunk stores one chunk of a job's CSV.
func (s *Store) AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := holdLease(ctx, tx, id, owner, leaseUntil); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO report_chunks (job_id, seq, data) VALUES ($1, $2, $3)`, id, seq, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("report %d chunk %d: %w", id, seq, err)
	}
	return nil
}

// FinishReportJob ends a job; the check of the lease and the change are
// one statement.
func (s *Store) FinishReportJob(ctx context.Context, id int64, owner string, rows int64, failure string) error {
	state := store.ReportDone
	if failure != "" {
		state = store.ReportFailed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE report_jobs SET state = $1, rows = $2, error = $3, finished_at = $4, lease_owner = '', lease_until = 0
		WHERE id = $5 AND lease_owner = $6 AND state = $7`,
		state, rows, failure, nanos(time.Now()), id, owner, store.ReportRunning)
	switch {
	case err != nil:
		return fmt.Errorf("finishing report %d: %w", id, mapErr(err))
	case tag.RowsAffected() != 1:
		return fmt.Errorf("finishing report %d: %w", id, store.ErrStale)
	}
	return nil
}

// ReportChunk returns one chunk of one of the tenant's jobs.
func (s *Store) ReportChunk(ctx context.Context, tenantID, id int64, seq int) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT c.data FROM report_chunks c JOIN report_jobs j ON j.id = c.job_id
		WHERE j.tenant_id = $1 AND c.job_id = $2 AND c.seq = $3`, tenantID, id, seq).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("report %d chunk %d: %w", id, seq, mapErr(err))
	}
	return data, nil
}

// PruneReportJobs removes old jobs that are not running; their chunks go
// with them (ON DELETE CASCADE). A job claimed meanwhile is running by the
// time the DELETE rechecks its locked row, and stays.
func (s *Store) PruneReportJobs(ctx context.Context, createdBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM report_jobs WHERE created_at < $1 AND state != $2`, nanos(createdBefore), store.ReportRunning)
	if err != nil {
		return 0, fmt.Errorf("pruning report jobs: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// DetailRows returns one page of a detailed report: the messages received
// (and refusals) in the range, each with every one of its recipients.
func (s *Store) DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error) {
	// A page is anchored on messages: each one's first Received event (or a
	// refusal's own event), paged by (time, id) along the trace_tenant_time
	// index, so a page costs its own size however large the range.
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	where := []string{"e.tenant_id = " + arg(q.TenantID)}
	if !q.AfterTime.IsZero() || q.AfterID != 0 {
		at := arg(nanos(q.AfterTime))
		where = append(where, fmt.Sprintf("e.time >= %s AND (e.time, e.id) > (%s, %s)", at, at, arg(q.AfterID)))
	}
	if !q.Since.IsZero() {
		where = append(where, "e.time >= "+arg(nanos(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, "e.time < "+arg(nanos(q.Until)))
	}
	if len(q.Senders) > 0 {
		senders := make([]string, len(q.Senders))
		for i, a := range q.Senders {
			senders[i] = strings.ToLower(a)
		}
		where = append(where, "e.sender = ANY("+arg(senders)+")")
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.time, e.queue_id, e.message_id, e.sender, e.recipient, e.subject, e.size, e.status, e.event, e.detail
		FROM trace_events e
		WHERE `+strings.Join(where, " AND ")+`
			AND CASE WHEN e.queue_id = '' THEN e.event = 'Rejected'
				ELSE e.event = 'Received' AND NOT EXISTS (SELECT 1 FROM trace_events p
					WHERE p.queue_id = e.queue_id AND p.event = 'Received' AND p.id < e.id) END
		ORDER BY e.time, e.id LIMIT `+arg(limit), args...)
	anchors, err := collect(rows, err, func(row scanner) (d store.DetailRow, err error) {
		var at int64
		err = row.Scan(&d.ID, &at, &d.QueueID, &d.MessageID, &d.Sender, &d.Recipient, &d.Subject, &d.Size, &d.Status, &d.Event, &d.Detail)
		d.Time = fromNanos(at)
		d.Received, d.LastEventTime = d.Time, d.Time
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading report messages: %w", err)
	}
	recipients, err := s.detailRecipients(ctx, q.TenantID, anchors)
	if err != nil {
		return nil, err
	}
	return store.MergeDetailRows(anchors, recipients), nil
}

// detailRecipients returns the rows of the anchors' messages by queue id:
// one per recipient (the first event of each queue id and recipient), in
// the order they appeared, with the latest event's status.
func (s *Store) detailRecipients(ctx context.Context, tenantID int64, anchors []store.DetailRow) (map[string][]store.DetailRow, error) {
	byQueue := map[string][]store.DetailRow{}
	ids := store.DetailQueueIDs(anchors)
	if len(ids) == 0 {
		return byQueue, nil
	}
	rows, err := s.pool.Query(ctx, `
		SELECT e.queue_id, e.message_id, e.sender, e.recipient, e.subject, e.size, l.status, l.event, l.time, l.detail
		FROM trace_events e
		CROSS JOIN LATERAL (SELECT x.status, x.event, x.time, x.detail FROM trace_events x
			WHERE x.queue_id = e.queue_id AND x.recipient = e.recipient ORDER BY x.id DESC LIMIT 1) l
		WHERE e.queue_id = ANY($2) AND e.tenant_id = $1
			AND NOT EXISTS (SELECT 1 FROM trace_events p WHERE p.queue_id = e.queue_id AND p.recipient = e.recipient AND p.id < e.id)
		ORDER BY e.id`, tenantID, ids)
	list, err := collect(rows, err, func(row scanner) (d store.DetailRow, err error) {
		var last int64
		err = row.Scan(&d.QueueID, &d.MessageID, &d.Sender, &d.Recipient, &d.Subject, &d.Size, &d.Status, &d.Event, &last, &d.Detail)
		d.LastEventTime = fromNanos(last)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading report recipients: %w", err)
	}
	for _, d := range list {
		byQueue[d.QueueID] = append(byQueue[d.QueueID], d)
	}
	return byQueue, nil
}
