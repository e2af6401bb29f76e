package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// Store is what the Dispatcher reads and writes.
type Store interface {
	NotifyCursor(ctx context.Context) (int64, error)
	// MeterEvents reads trace events after an id, lowest first (the same
	// read as usage metering's).
	MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error)
	AddNotifications(ctx context.Context, from, to int64, rows []store.WebhookDelivery) error
	Webhooks(ctx context.Context, tenantID int64) ([]store.Webhook, error)
	AlertsByEvent(ctx context.Context, eventIDs []int64) ([]store.Alert, error)
	Tenant(ctx context.Context, id int64) (directory.Tenant, error)

	// For failure reports.
	Lookup(ctx context.Context, address string) (directory.Entry, error)
	Account(ctx context.Context, tenantID, id int64) (directory.Account, error)
	QueueRecipients(ctx context.Context, queueID string) ([]queue.Recipient, error)
	Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error
}

// Dispatcher turns trace events into webhook outbox rows and failure
// reports: every second, or at once when woken. One runs per node; several
// may run at once (the cursor is compared and set, and a failure report
// has a queue id derived from its message's, so it is queued once).
type Dispatcher struct {
	store Store
	log   *slog.Logger
	wake  chan struct{}
	// Batch is how many trace events one pass reads.
	Batch int
	// Interval is how often Run looks for new events.
	Interval time.Duration
	// Hostname names this server in the Message-IDs of failure reports.
	Hostname string
	// Now is the clock of outbox rows and failure reports; tests set it.
	Now func() time.Time
	// OnNotify, when set, is called after a pass wrote outbox rows (to
	// wake the Sender).
	OnNotify func()
	// OnReport, when set, is called after failure reports were queued (to
	// wake delivery).
	OnReport func()

	// mu keeps Run and CatchUp of one node from racing each other for the
	// cursor (which would be safe, but wasted work).
	mu      sync.Mutex
	tenants map[int64]string // tenant names by id; tenants are never renamed
}

// NewDispatcher returns a dispatcher over st; Run starts it.
func NewDispatcher(st Store, log *slog.Logger) *Dispatcher {
	return &Dispatcher{store: st, log: log, wake: make(chan struct{}, 1), Batch: 1000, Interval: time.Second,
		Hostname: "localhost", Now: time.Now, tenants: map[int64]string{}}
}

// Wake makes Run look for new events now.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches new events until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for {
		if err := d.CatchUp(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("dispatching notifications failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// CatchUp dispatches every event trace holds now, pass after pass, and
// returns once there are none left (or on the first error).
func (d *Dispatcher) CatchUp(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		n, err := d.pass(ctx)
		if err != nil {
			return err
		}
		if n < d.Batch {
			return nil
		}
	}
}

// pass handles one batch of events after the cursor and returns how many
// it read. The cursor only moves forward by event id, so trace retention
// (trace.Retention), which deletes old events below it, changes nothing
// here.
func (d *Dispatcher) pass(ctx context.Context) (int, error) {
	from, err := d.store.NotifyCursor(ctx)
	if err != nil {
		return 0, err
	}
	events, err := d.store.MeterEvents(ctx, from, d.Batch)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	to := events[len(events)-1].ID
	rows, err := d.outboxRows(ctx, events)
	if err != nil {
		return 0, err
	}
	// Reports first: each has a fixed queue id, so one queued before a
	// crash (or by another node) is not queued again when the same events
	// are read once more.
	reports, err := d.failureReports(ctx, events)
	if err != nil {
		return 0, err
	}
	if reports > 0 && d.OnReport != nil {
		d.OnReport()
	}
	err = d.store.AddNotifications(ctx, from, to, rows)
	if errors.Is(err, store.ErrStale) {
		// Another node handled these events first; read on from where it
		// left the cursor.
		return d.Batch, nil
	}
	if err != nil {
		return 0, err
	}
	if len(rows) > 0 && d.OnNotify != nil {
		d.OnNotify()
	}
	return len(events), nil
}

// outboxRows makes one row per event and webhook that subscribes to it.
func (d *Dispatcher) outboxRows(ctx context.Context, events []store.MeterEvent) ([]store.WebhookDelivery, error) {
	var alertIDs []int64
	relevant := false
	for _, e := range events {
		switch webhookEvent(e.Event.Event) {
		case "":
			continue
		case EventAlert:
			alertIDs = append(alertIDs, e.ID)
		}
		relevant = true
	}
	if !relevant {
		return nil, nil
	}
	all, err := d.store.Webhooks(ctx, 0)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, nil
	}
	hooks := map[int64][]store.Webhook{}
	for _, w := range all {
		hooks[w.TenantID] = append(hooks[w.TenantID], w)
	}
	alerts := map[int64]store.Alert{}
	if len(alertIDs) > 0 {
		list, err := d.store.AlertsByEvent(ctx, alertIDs)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			alerts[a.EventID] = a
		}
	}
	now := d.Now().UTC()
	var rows []store.WebhookDelivery
	for _, e := range events {
		ev := webhookEvent(e.Event.Event)
		if ev == "" {
			continue
		}
		var body []byte
		for _, w := range hooks[e.TenantID] {
			if !w.Wants(ev) {
				continue
			}
			if body == nil {
				tenant, err := d.tenantName(ctx, e.TenantID)
				if err != nil {
					return nil, err
				}
				if body, err = json.Marshal(payload(ev, e.Event, tenant, alerts)); err != nil {
					return nil, fmt.Errorf("encoding the payload of trace event %d: %w", e.ID, err)
				}
			}
			rows = append(rows, store.WebhookDelivery{WebhookID: w.ID, TenantID: e.TenantID, EventID: e.ID, Event: ev, Payload: body,
				State: store.WebhookPending, CreatedAt: now, NextAttemptAt: now})
		}
	}
	return rows, nil
}

// payload is the body of the POST that tells of trace event e.
func payload(ev string, e trace.Event, tenant string, alerts map[int64]store.Alert) Payload {
	p := Payload{Event: ev, EventID: e.ID, Time: e.Time.UTC(), Tenant: tenant, Detail: e.Detail}
	if ev != EventAlert {
		p.QueueID, p.MessageID, p.Sender, p.Recipient, p.Subject, p.Status = e.QueueID, e.MessageID, e.Sender, e.Recipient, e.Subject, e.Status
		return p
	}
	p.Account = e.Sender
	if a, ok := alerts[e.ID]; ok {
		// The alert's own text, without the "kind: " that trace shows.
		p.Account, p.Kind, p.Detail, p.Values = a.Account, a.Kind, a.Message, a.Values
	}
	return p
}

// tenantName returns a tenant's name, from memory after the first time.
func (d *Dispatcher) tenantName(ctx context.Context, id int64) (string, error) {
	if name, ok := d.tenants[id]; ok {
		return name, nil
	}
	t, err := d.store.Tenant(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	d.tenants[id] = t.Name
	return t.Name, nil
}
