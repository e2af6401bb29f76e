package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// Store is what the runner reads and writes.
type Store interface {
	Rows
	ClaimReportJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (store.ReportJob, error)
	AddReportChunk(ctx context.Context, id int64, owner string, seq int, data []byte, leaseUntil time.Time) error
	FinishReportJob(ctx context.Context, id int64, owner string, rows int64, failure string) error
	PruneReportJobs(ctx context.Context, createdBefore time.Time) (int, error)
	// The directory, to find an account's aliases.
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	Account(ctx context.Context, tenantID, id int64) (directory.Account, error)
	Mailbox(ctx context.Context, tenantID, id int64) (directory.Mailbox, error)
}

// Runner runs queued report jobs, one at a time, on this node.
type Runner struct {
	store Store
	owner string
	log   *slog.Logger
	wake  chan struct{}
	// Lease is how long a job stays this node's without a word from it;
	// every chunk written renews it. A job whose node dies runs again
	// elsewhere (or here after a restart) once its lease has passed.
	Lease time.Duration
	// Interval is how often Run looks for jobs when not woken.
	Interval time.Duration
	// Keep is how long reports are kept after they were requested.
	Keep time.Duration
}

// NewRunner returns a runner over st; owner names this node in job leases.
func NewRunner(st Store, owner string, log *slog.Logger) *Runner {
	return &Runner{store: st, owner: owner, log: log, wake: make(chan struct{}, 1),
		Lease: 30 * time.Second, Interval: 2 * time.Second, Keep: 7 * 24 * time.Hour}
}

// Wake makes Run look for jobs now (a job was just requested).
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run runs jobs until ctx ends, and prunes old reports once an hour.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	var pruned time.Time
	for {
		for {
			ran, err := r.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Error("report job failed", "err", err)
			}
			if !ran || ctx.Err() != nil {
				break
			}
		}
		if time.Since(pruned) > time.Hour && ctx.Err() == nil {
			pruned = time.Now()
			if n, err := r.store.PruneReportJobs(ctx, pruned.Add(-r.Keep)); err != nil {
				r.log.Error("pruning old reports failed", "err", err)
			} else if n > 0 {
				r.log.Info("pruned old reports", "reports", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// RunOnce claims one job and runs it to the end. It reports whether there
// was a job; the error is the job's (recorded in it as well) or the
// store's.
func (r *Runner) RunOnce(ctx context.Context) (bool, error) {
	job, err := r.store.ClaimReportJob(ctx, r.owner, time.Now(), r.Lease)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	log := r.log.With("report", job.ID)
	log.Info("report job started", "account", job.Account, "since", job.Since, "until", job.Until)
	start := time.Now()
	cw := &chunkWriter{ctx: ctx, r: r, id: job.ID, stored: time.Now()}
	var rows int64
	senders, err := r.senders(ctx, job)
	if err == nil {
		q := store.DetailQuery{TenantID: job.TenantID, Senders: senders, Since: job.Since, Until: job.Until}
		rows, err = WriteCSV(ctx, r.store, q, cw)
	}
	if err == nil {
		err = cw.flush()
	}
	if ctx.Err() != nil || errors.Is(err, store.ErrStale) {
		// Shutting down, or another node took the job over: it is not
		// failed, it runs again from the start once the lease has passed.
		return true, err
	}
	failure := ""
	if err != nil {
		failure = err.Error()
	}
	if ferr := r.store.FinishReportJob(ctx, job.ID, r.owner, rows, failure); ferr != nil {
		return true, errors.Join(err, ferr)
	}
	if err != nil {
		return true, fmt.Errorf("report %d: %w", job.ID, err)
	}
	log.Info("report job done", "rows", rows, "chunks", cw.seq, "took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// senders lists the addresses a job's account sends as: its primary
// address and aliases (MAIL FROM may be any of them). An address the
// directory does not know (a removed account) is itself; no account means
// every sender.
func (r *Runner) senders(ctx context.Context, job store.ReportJob) ([]string, error) {
	if job.Account == "" {
		return nil, nil
	}
	e, err := r.store.Lookup(ctx, job.Account)
	if errors.Is(err, store.ErrNotFound) || err == nil && e.TenantID != job.TenantID {
		return []string{job.Account}, nil
	}
	if err != nil {
		return nil, err
	}
	switch e.Kind {
	case directory.KindAccount:
		a, err := r.store.Account(ctx, job.TenantID, e.ID)
		if err != nil {
			return nil, err
		}
		return append([]string{a.Address}, a.Aliases...), nil
	case directory.KindMailbox:
		m, err := r.store.Mailbox(ctx, job.TenantID, e.ID)
		if err != nil {
			return nil, err
		}
		return append([]string{m.Address}, m.Aliases...), nil
	}
	return []string{job.Account}, nil
}

// chunkWriter gathers the CSV into chunks of ChunkSize and stores each one,
// renewing the job's lease as it goes.
type chunkWriter struct {
	ctx context.Context
	r   *Runner
	id  int64
	buf bytes.Buffer
	seq int
	// stored is when the last chunk was stored (the lease renewed).
	stored time.Time
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := ChunkSize - w.buf.Len()
		take := min(room, len(p))
		w.buf.Write(p[:take])
		p = p[take:]
		// A chunk also goes out when the lease is a third gone, so that a
		// slow, sparse report keeps its lease.
		if w.buf.Len() >= ChunkSize || time.Since(w.stored) > w.r.Lease/3 {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush stores what is gathered as the next chunk.
func (w *chunkWriter) flush() error {
	if w.buf.Len() == 0 {
		return nil
	}
	err := w.r.store.AddReportChunk(w.ctx, w.id, w.r.owner, w.seq, w.buf.Bytes(), time.Now().Add(w.r.Lease))
	if err != nil {
		return err
	}
	w.seq++
	w.buf.Reset()
	w.stored = time.Now()
	return nil
}
