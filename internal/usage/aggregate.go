// Package usage meters what each account sends: a background aggregator
// reads message trace in id order and adds it to hourly counters per tenant
// and account, and Summarize turns those counters into the usage report
// (per day or per hour, with the estimated cost).
//
// Metering reads trace rather than being called from the SMTP and delivery
// code, so those paths stay as they are, and whatever trace records (on any
// node) is counted once: the counters and the cursor move in one
// transaction (see store.Usage).
package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/trace"
)

// Store is what the aggregator reads and writes.
type Store interface {
	UsageCursor(ctx context.Context) (int64, error)
	MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error)
	AddUsage(ctx context.Context, from, to int64, rows []store.UsageRow) error
	// Lookup resolves a sender address (an alias, say) to its owner.
	Lookup(ctx context.Context, address string) (directory.Entry, error)
}

// Aggregator keeps the usage counters up to date with trace: every second,
// or at once when woken. One runs per node; several may run at once.
type Aggregator struct {
	store Store
	log   *slog.Logger
	wake  chan struct{}
	// Batch is how many events one pass reads and counts in one
	// transaction.
	Batch int
	// Interval is how often Run looks for new events.
	Interval time.Duration

	// mu keeps Run and CatchUp of one node from racing each other for the
	// cursor (which would be safe, but wasted work).
	mu sync.Mutex
}

// NewAggregator returns an aggregator over st; Run starts it.
func NewAggregator(st Store, log *slog.Logger) *Aggregator {
	return &Aggregator{store: st, log: log, wake: make(chan struct{}, 1), Batch: 2000, Interval: time.Second}
}

// Wake makes Run look for new events now.
func (a *Aggregator) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run counts new events until ctx ends.
func (a *Aggregator) Run(ctx context.Context) {
	t := time.NewTicker(a.Interval)
	defer t.Stop()
	for {
		if err := a.CatchUp(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("usage metering failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.wake:
		}
	}
}

// CatchUp counts every event trace holds now, pass after pass, and returns
// once there are none left (or on the first error).
func (a *Aggregator) CatchUp(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		n, err := a.pass(ctx)
		if err != nil {
			return err
		}
		if n < a.Batch {
			return nil
		}
	}
}

// pass counts one batch of events after the cursor and returns how many it
// read. The cursor only moves forward by event id, so trace retention
// (trace.Retention), which deletes old events below it, changes nothing
// here; it skips no event the meter has yet to count unless metering lags
// behind by the whole retention.
func (a *Aggregator) pass(ctx context.Context) (int, error) {
	from, err := a.store.UsageCursor(ctx)
	if err != nil {
		return 0, err
	}
	events, err := a.store.MeterEvents(ctx, from, a.Batch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	to := events[len(events)-1].ID
	rows := Count(events)
	if err := a.resolve(ctx, rows); err != nil {
		return 0, err
	}
	err = a.store.AddUsage(ctx, from, to, rows)
	if errors.Is(err, store.ErrStale) {
		// Another node counted these events first; read on from where it
		// left the cursor.
		return a.Batch, nil
	}
	if err != nil {
		return 0, err
	}
	return len(events), nil
}

// resolve names each row's account by its primary address: a message sent
// from an alias (MAIL FROM may be any of the account's addresses) is the
// account's usage. An address the directory no longer knows (a removed
// account) stays as it is.
func (a *Aggregator) resolve(ctx context.Context, rows []store.UsageRow) error {
	primary := map[string]string{}
	for i := range rows {
		r := &rows[i]
		p, ok := primary[r.Account]
		if !ok {
			p = r.Account
			e, err := a.store.Lookup(ctx, r.Account)
			switch {
			case err == nil && e.TenantID == r.TenantID && (e.Kind == directory.KindAccount || e.Kind == directory.KindMailbox):
				p = e.Address
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("resolving sender %s: %w", r.Account, err)
			}
			primary[r.Account] = p
		}
		r.Account = p
	}
	return nil
}

// Count adds events up into usage rows, one per tenant, account and hour.
// Events that metering does not count (expansions, deferrals, sign-ins)
// and events without a sender are skipped.
func Count(events []store.MeterEvent) []store.UsageRow {
	type key struct {
		tenant  int64
		account string
		hour    time.Time
	}
	index := map[key]int{}
	var rows []store.UsageRow
	for _, e := range events {
		if e.Sender == "" {
			continue
		}
		switch e.Event.Event {
		case trace.EventReceived, trace.EventDelivered, trace.EventFailed, trace.EventRejected:
		default:
			continue
		}
		k := key{e.TenantID, strings.ToLower(e.Sender), e.Time.UTC().Truncate(time.Hour)}
		i, ok := index[k]
		if !ok {
			i = len(rows)
			index[k] = i
			rows = append(rows, store.UsageRow{TenantID: k.tenant, Account: k.account, Hour: k.hour})
		}
		r := &rows[i]
		switch e.Event.Event {
		case trace.EventReceived:
			r.Recipients++
			if e.FirstReceived {
				r.Messages++
				r.Bytes += e.Size
			}
		case trace.EventDelivered:
			r.ExpandedRecipients++
		case trace.EventFailed:
			r.Failures++
		case trace.EventRejected:
			r.Refusals++
			if r.RefusalsByReason == nil {
				r.RefusalsByReason = map[string]int64{}
			}
			r.RefusalsByReason[Reason(e.Detail)]++
		}
	}
	return rows
}
