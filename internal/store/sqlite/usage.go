package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"hve/internal/store"
)

// UsageCursor returns the id of the last trace event counted in usage.
func (s *Store) UsageCursor(ctx context.Context) (int64, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT last_event_id FROM usage_cursor WHERE id = 1`).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("reading the usage cursor: %w", mapErr(err))
	}
	return id, nil
}

// MeterEvents returns trace events after afterID, marking the first
// Received event of each message.
func (s *Store) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	// A message's Received events may straddle two pages; asking the
	// table whether an earlier one exists (an index range on queue_id)
	// counts the message exactly once whatever the page boundaries.
	rows, err := s.r.QueryContext(ctx, `
		SELECT e.id, e.tenant_id, e.time, e.queue_id, e.message_id, e.sender, e.recipient, e.event, e.status, e.detail, e.client_ip, e.subject, e.size,
			e.event = 'Received' AND NOT EXISTS (SELECT 1 FROM trace_events p
				WHERE p.queue_id = e.queue_id AND p.event = 'Received' AND p.id < e.id)
		FROM trace_events e WHERE e.id > ? ORDER BY e.id LIMIT ?`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading trace for metering: %w", err)
	}
	return collect(rows, func(row scanner) (m store.MeterEvent, err error) {
		var t int64
		e := &m.Event
		err = row.Scan(&e.ID, &e.TenantID, &t, &e.QueueID, &e.MessageID, &e.Sender, &e.Recipient, &e.Event, &e.Status, &e.Detail,
			&e.ClientIP, &e.Subject, &e.Size, &m.FirstReceived)
		e.Time = fromNanos(t)
		return m, err
	})
}

// AddUsage adds rows to the hourly counters and moves the cursor, in one
// transaction.
func (s *Store) AddUsage(ctx context.Context, from, to int64, rows []store.UsageRow) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE usage_cursor SET last_event_id = ? WHERE id = 1 AND last_event_id = ?`, to, from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return store.ErrStale
		}
		hours, err := tx.PrepareContext(ctx, `INSERT INTO usage_hours
			(tenant_id, account, hour, messages, recipients, expanded_recipients, bytes, failures, refusals)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, hour, account) DO UPDATE SET
				messages = messages + excluded.messages,
				recipients = recipients + excluded.recipients,
				expanded_recipients = expanded_recipients + excluded.expanded_recipients,
				bytes = bytes + excluded.bytes,
				failures = failures + excluded.failures,
				refusals = refusals + excluded.refusals`)
		if err != nil {
			return err
		}
		defer hours.Close()
		reasons, err := tx.PrepareContext(ctx, `INSERT INTO usage_refusals (tenant_id, account, hour, reason, count)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, hour, account, reason) DO UPDATE SET count = count + excluded.count`)
		if err != nil {
			return err
		}
		defer reasons.Close()
		for _, r := range rows {
			hour := nanos(r.Hour.UTC().Truncate(time.Hour))
			account := strings.ToLower(r.Account)
			_, err := hours.ExecContext(ctx, r.TenantID, account, hour, r.Messages, r.Recipients, r.ExpandedRecipients,
				r.Bytes, r.Failures, r.Refusals)
			if err != nil {
				return fmt.Errorf("usage of %s: %w", account, err)
			}
			for reason, n := range r.RefusalsByReason {
				if _, err := reasons.ExecContext(ctx, r.TenantID, account, hour, reason, n); err != nil {
					return fmt.Errorf("refusals of %s: %w", account, err)
				}
			}
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
	where := []string{"tenant_id = ?"}
	args := []any{q.TenantID}
	if q.Account != "" {
		where = append(where, "account = ?")
		args = append(args, strings.ToLower(q.Account))
	}
	if !q.Since.IsZero() {
		where = append(where, "hour >= ?")
		args = append(args, nanos(q.Since.UTC().Truncate(time.Hour)))
	}
	if !q.Until.IsZero() {
		where = append(where, "hour < ?")
		args = append(args, nanos(q.Until))
	}
	cond := strings.Join(where, " AND ")
	rows, err := s.r.QueryContext(ctx, `SELECT account, hour, messages, recipients, expanded_recipients, bytes, failures, refusals
		FROM usage_hours WHERE `+cond+` ORDER BY hour, account`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	type key struct {
		account string
		hour    int64
	}
	index := map[key]int{}
	list, err := collect(rows, func(row scanner) (r store.UsageRow, err error) {
		var hour int64
		err = row.Scan(&r.Account, &hour, &r.Messages, &r.Recipients, &r.ExpandedRecipients, &r.Bytes, &r.Failures, &r.Refusals)
		r.TenantID, r.Hour, r.RefusalsByReason = q.TenantID, fromNanos(hour), map[string]int64{}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading usage: %w", err)
	}
	for i, r := range list {
		index[key{r.Account, nanos(r.Hour)}] = i
	}
	rows, err = s.r.QueryContext(ctx, `SELECT account, hour, reason, count FROM usage_refusals WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("reading refusals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k key
		var reason string
		var n int64
		if err := rows.Scan(&k.account, &k.hour, &reason, &n); err != nil {
			return nil, fmt.Errorf("reading refusals: %w", err)
		}
		// Both tables change in one transaction, so every refusal row has
		// its hour row.
		if i, ok := index[k]; ok {
			list[i].RefusalsByReason[reason] += n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading refusals: %w", err)
	}
	if list == nil {
		list = []store.UsageRow{}
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO report_jobs (tenant_id, account, since, until, state, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			j.TenantID, j.Account, nanos(j.Since), nanos(j.Until), j.State, nanos(j.CreatedAt))
		if err != nil {
			return err
		}
		j.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return store.ReportJob{}, fmt.Errorf("creating report job: %w", err)
	}
	return j, nil
}

// ReportJob returns one of the tenant's jobs.
func (s *Store) ReportJob(ctx context.Context, tenantID, id int64) (store.ReportJob, error) {
	j, err := scanReportJob(s.r.QueryRowContext(ctx, `SELECT `+reportJobColumns+` FROM report_jobs WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return store.ReportJob{}, fmt.Errorf("report %d: %w", id, mapErr(err))
	}
	return j, nil
}

// ClaimReportJob leases the oldest job that is waiting or whose runner died.
func (s *Store) ClaimReportJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (store.ReportJob, error) {
	var j store.ReportJob
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanReportJob(tx.QueryRowContext(ctx, `
			UPDATE report_jobs SET state = ?, lease_owner = ?, lease_until = ?
			WHERE id = (SELECT id FROM report_jobs
				WHERE state = ? OR (state = ? AND lease_until < ?) ORDER BY id LIMIT 1)
			RETURNING `+reportJobColumns,
			store.ReportRunning, owner, nanos(now.Add(lease)), store.ReportQueued, store.ReportRunning, nanos(now)))
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM report_chunks WHERE job_id = ?`, j.ID)
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
func holdLease(ctx context.Context, tx *sql.Tx, id int64, owner string, until time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE report_jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = ?`,
		nanos(until), id, owner, store.ReportRunning)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n != 1 {
		return store.ErrStale
	}
	return nil
}

// AddReportChunk stores one chunk of a job's CSV.
func (s *Store) AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := holdLease(ctx, tx, id, owner, leaseUntil); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO report_chunks (job_id, seq, data) VALUES (?, ?, ?)`, id, seq, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("report %d chunk %d: %w", id, seq, err)
	}
	return nil
}

// FinishReportJob ends a job.
func (s *Store) FinishReportJob(ctx context.Context, id int64, owner string, rows int64, failure string) error {
	state := store.ReportDone
	if failure != "" {
		state = store.ReportFailed
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := holdLease(ctx, tx, id, owner, time.Time{}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE report_jobs SET state = ?, rows = ?, error = ?, finished_at = ?, lease_owner = '', lease_until = 0
			WHERE id = ?`, state, rows, failure, nanos(time.Now()), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("finishing report %d: %w", id, err)
	}
	return nil
}

// ReportChunk returns one chunk of one of the tenant's jobs.
func (s *Store) ReportChunk(ctx context.Context, tenantID, id int64, seq int) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT c.data FROM report_chunks c JOIN report_jobs j ON j.id = c.job_id
		WHERE j.tenant_id = ? AND c.job_id = ? AND c.seq = ?`, tenantID, id, seq).Scan(&data)
	if err != nil {
		return nil, fmt.Errorf("report %d chunk %d: %w", id, seq, mapErr(err))
	}
	return data, nil
}

// PruneReportJobs removes old jobs that are not running.
func (s *Store) PruneReportJobs(ctx context.Context, createdBefore time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		const old = `SELECT id FROM report_jobs WHERE created_at < ? AND state != ?`
		if _, err := tx.ExecContext(ctx, `DELETE FROM report_chunks WHERE job_id IN (`+old+`)`, nanos(createdBefore), store.ReportRunning); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM report_jobs WHERE id IN (`+old+`)`, nanos(createdBefore), store.ReportRunning)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning report jobs: %w", err)
	}
	return int(n), nil
}

// DetailRows returns one page of a detailed report: the messages received
// (and refusals) in the range, each with every one of its recipients.
func (s *Store) DetailRows(ctx context.Context, q store.DetailQuery) ([]store.DetailRow, error) {
	// A page is anchored on messages: each one's first Received event (or a
	// refusal's own event), paged by (time, id), which walks the
	// trace_tenant_time index (it ends in the rowid), so a page costs its
	// own size however large the range.
	where := []string{"e.tenant_id = ?"}
	args := []any{q.TenantID}
	if !q.AfterTime.IsZero() || q.AfterID != 0 {
		at := nanos(q.AfterTime)
		where = append(where, "e.time >= ? AND (e.time > ? OR e.id > ?)")
		args = append(args, at, at, q.AfterID)
	}
	if !q.Since.IsZero() {
		where = append(where, "e.time >= ?")
		args = append(args, nanos(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "e.time < ?")
		args = append(args, nanos(q.Until))
	}
	if len(q.Senders) > 0 {
		where = append(where, "e.sender IN (?"+strings.Repeat(", ?", len(q.Senders)-1)+")")
		for _, a := range q.Senders {
			args = append(args, strings.ToLower(a))
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, `
		SELECT e.id, e.time, e.queue_id, e.message_id, e.sender, e.recipient, e.subject, e.size, e.status, e.event, e.detail
		FROM trace_events e
		WHERE `+strings.Join(where, " AND ")+`
			AND CASE WHEN e.queue_id = '' THEN e.event = 'Rejected'
				ELSE e.event = 'Received' AND NOT EXISTS (SELECT 1 FROM trace_events p
					WHERE p.queue_id = e.queue_id AND p.event = 'Received' AND p.id < e.id) END
		ORDER BY e.time, e.id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading report messages: %w", err)
	}
	anchors, err := collect(rows, func(row scanner) (d store.DetailRow, err error) {
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
	// The tenant is checked, not searched on ("+" keeps SQLite from
	// walking the tenant's index instead of the queue ids').
	args := []any{tenantID}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, `
		SELECT e.queue_id, e.message_id, e.sender, e.recipient, e.subject, e.size, l.status, l.event, l.time, l.detail
		FROM trace_events e
		JOIN trace_events l ON l.id = (SELECT max(x.id) FROM trace_events x WHERE x.queue_id = e.queue_id AND x.recipient = e.recipient)
		WHERE +e.tenant_id = ? AND e.queue_id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)
			AND NOT EXISTS (SELECT 1 FROM trace_events p WHERE p.queue_id = e.queue_id AND p.recipient = e.recipient AND p.id < e.id)
		ORDER BY e.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading report recipients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d store.DetailRow
		var last int64
		if err := rows.Scan(&d.QueueID, &d.MessageID, &d.Sender, &d.Recipient, &d.Subject, &d.Size, &d.Status, &d.Event, &last, &d.Detail); err != nil {
			return nil, fmt.Errorf("reading report recipients: %w", err)
		}
		d.LastEventTime = fromNanos(last)
		byQueue[d.QueueID] = append(byQueue[d.QueueID], d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading report recipients: %w", err)
	}
	return byQueue, nil
}
