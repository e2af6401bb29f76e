package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"hve/internal/store"
)

// SenderStore is what the Sender reads and writes.
type SenderStore interface {
	ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]store.WebhookDelivery, error)
	FinishWebhookDelivery(ctx context.Context, owner string, d store.WebhookDelivery) error
	PruneWebhookDeliveries(ctx context.Context, createdBefore time.Time) (int, error)
}

// DefaultSchedule is the wait after each failed attempt: 10 seconds after
// the first, then 30 seconds, 2 minutes, 10 minutes, and an hour after the
// fifth and every later one, until DefaultGiveUpAfter.
var DefaultSchedule = []time.Duration{10 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}

// Defaults of the Sender.
const (
	// DefaultGiveUpAfter: a notification not delivered a day after it was
	// made is given up (the last attempt is made at that age).
	DefaultGiveUpAfter = 24 * time.Hour
	// DefaultTimeout bounds one POST, reply included.
	DefaultTimeout = 10 * time.Second
	// DefaultKeep is how long delivered and given-up rows stay in the
	// outbox (to be looked at) before they are pruned.
	DefaultKeep = 7 * 24 * time.Hour
)

// Sender POSTs outbox rows to their webhooks: a 2xx reply is success;
// any other reply (redirects too), a timeout or a network error is retried
// after Schedule, varied by ±20% so that rows that failed together (a
// receiver that was down) do not all return in the same second.
type Sender struct {
	store  SenderStore
	owner  string
	log    *slog.Logger
	wake   chan struct{}
	client *http.Client

	// Now is the clock of claims and retries; tests set it.
	Now func() time.Time
	// Schedule is the wait after the n-th failed attempt (its last entry
	// repeats); GiveUpAfter is how long after its creation a row is given
	// up.
	Schedule    []time.Duration
	GiveUpAfter time.Duration
	// Jitter varies a wait; nil means ±20% at random.
	Jitter func(time.Duration) time.Duration
	// Batch rows are claimed at once and leased for Lease; Concurrency of
	// them are posted at a time.
	Batch       int
	Lease       time.Duration
	Concurrency int
	// Poll is how often Run looks for due rows when nothing wakes it.
	Poll time.Duration
	// Keep is how long finished rows are kept.
	Keep time.Duration

	pruned time.Time // when Run last pruned
}

// NewSender returns a sender that leases rows as owner (unique per node).
func NewSender(st SenderStore, owner string, log *slog.Logger) *Sender {
	return &Sender{
		store: st, owner: owner, log: log, wake: make(chan struct{}, 1),
		client: &http.Client{
			Timeout: DefaultTimeout,
			// A redirect is not followed: the webhook's URL is the one
			// the admin configured, and a 3xx says it is wrong.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		Now: time.Now, Schedule: DefaultSchedule, GiveUpAfter: DefaultGiveUpAfter,
		Batch: 64, Lease: 2 * time.Minute, Concurrency: 8, Poll: time.Second, Keep: DefaultKeep,
	}
}

// Wake makes Run look for due rows now.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends due rows until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		n, err := s.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("sending webhooks failed; retrying", "err", err)
		}
		s.prune(ctx)
		wait := s.Poll
		if n == s.Batch {
			wait = 0 // more may be due
		}
		timer.Reset(wait)
	}
}

// prune removes old finished rows, once an hour.
func (s *Sender) prune(ctx context.Context) {
	now := s.Now()
	if now.Sub(s.pruned) < time.Hour {
		return
	}
	s.pruned = now
	if n, err := s.store.PruneWebhookDeliveries(ctx, now.Add(-s.Keep)); err != nil {
		s.log.Error("pruning the webhook outbox", "err", err)
	} else if n > 0 {
		s.log.Debug("pruned the webhook outbox", "rows", n)
	}
}

// RunOnce claims the rows due now, sends them and records each outcome. It
// returns how many it claimed.
func (s *Sender) RunOnce(ctx context.Context) (int, error) {
	rows, err := s.store.ClaimWebhookDeliveries(ctx, s.owner, s.Now(), s.Batch, s.Lease)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	// Posting ends well within the lease, so that the outcome is recorded
	// before another node may claim the rows.
	postCtx, cancel := context.WithTimeout(ctx, s.Lease*3/4)
	defer cancel()
	sem := make(chan struct{}, max(1, s.Concurrency))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, d := range rows {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.post(postCtx, d)
			d = s.outcome(d, err)
			// A row gone with its webhook, or whose lease passed to
			// another node (which sends it again: receivers drop the
			// repeat by X-Hve-Delivery), needs nothing more here.
			ferr := s.store.FinishWebhookDelivery(ctx, s.owner, d)
			if ferr != nil && !errors.Is(ferr, store.ErrNotFound) && !errors.Is(ferr, store.ErrStale) {
				mu.Lock()
				errs = append(errs, ferr)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(rows), errors.Join(errs...)
}

// post sends one row; nil means the receiver answered 2xx.
func (s *Sender) post(ctx context.Context, d store.WebhookDelivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return fmt.Errorf("webhook URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hve-webhook/1")
	req.Header.Set(HeaderSignature, Sign(d.Secret, d.Payload))
	req.Header.Set(HeaderEvent, d.Event)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.ID, 10))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// A little of the reply says why in the log; the rest is read so that
	// the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s: %s", resp.Status, oneLine(string(snippet)))
	}
	return nil
}

// outcome is the row after an attempt that ended with err.
func (s *Sender) outcome(d store.WebhookDelivery, err error) store.WebhookDelivery {
	d.Attempts++
	if err == nil {
		d.State, d.LastError = store.WebhookDone, ""
		return d
	}
	now := s.Now()
	d.LastError = oneLine(err.Error())
	deadline := d.CreatedAt.Add(s.GiveUpAfter)
	if !now.Before(deadline) {
		d.State = store.WebhookFailed
		s.log.Warn("webhook given up", "webhook_id", d.WebhookID, "url", d.URL, "event", d.Event, "event_id", d.EventID,
			"attempts", d.Attempts, "err", d.LastError)
		return d
	}
	wait := s.Schedule[min(d.Attempts, len(s.Schedule))-1]
	if s.Jitter != nil {
		wait = s.Jitter(wait)
	} else {
		wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
	}
	// The last attempt is made at the deadline rather than up to an hour
	// before it.
	d.State, d.NextAttemptAt = store.WebhookPending, now.Add(wait)
	if d.NextAttemptAt.After(deadline) {
		d.NextAttemptAt = deadline
	}
	s.log.Debug("webhook failed; will retry", "webhook_id", d.WebhookID, "url", d.URL, "attempt", d.Attempts,
		"next_attempt_at", d.NextAttemptAt, "err", d.LastError)
	return d
}
