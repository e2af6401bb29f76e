// Package alert raises alerts about accounts: an account that reached its
// warning level, or whose hourly volume jumped far above its own baseline
// (the anomaly rule, anomaly.go), which is how a leaked password is
// noticed.
//
// An alert is three things: a trace event (trace.EventAlert, the account
// as the sender and the text as the detail), a Warn log line, and, through
// the notification dispatcher (package webhook), a signed JSON POST to
// each webhook of the tenant that subscribes to "alert". It happens once
// per account, kind and period (a UTC day unless the caller says
// otherwise), on one node or many: the store keeps the key.
package alert

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"hve/internal/limits"
	"hve/internal/store"
)

// The kinds of alert hve raises.
const (
	// KindWarningLevel: an account (or a tenant) reached the warning level
	// of a daily limit.
	KindWarningLevel = "warning_level"
	// KindAnomaly: an account's hourly volume jumped far above its
	// baseline.
	KindAnomaly = "anomaly"
)

// Alert is what a caller raises.
type Alert struct {
	TenantID int64
	// Account is the account's primary address; empty for an alert about
	// the whole tenant.
	Account string
	// Kind names the rule (KindWarningLevel, KindAnomaly, ...): lower case
	// letters and underscores.
	Kind string
	// Message is the text for people; Values the numbers behind it, for
	// programs (they go into the webhook payload as "values").
	Message string
	Values  map[string]any
	// At is when it happened; zero means now.
	At time.Time
	// Per makes the alert happen once per account, kind and period: the
	// periods are aligned to UTC (a day starts at midnight UTC). Zero
	// means a day; a negative value raises every time.
	Per time.Duration
	// Window is the start of the period the alert is about, when that is
	// not the one holding At (the anomaly rule raises at 10:05 about the
	// hour from 9:00).
	Window time.Time
}

// Store is where alerts are recorded.
type Store interface {
	AddAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error)
}

// Raiser raises alerts. It is safe for concurrent use.
type Raiser struct {
	store Store
	log   *slog.Logger
	// Now is the clock of alerts without a time; tests set it.
	Now func() time.Time
	// OnRaise, when set, is called after an alert was recorded (to wake
	// the notification dispatcher, so that webhooks hear of it at once).
	OnRaise func()

	wg sync.WaitGroup // asynchronous raises (WarnLevelCrossed)
}

// NewRaiser returns a raiser that records alerts in st.
func NewRaiser(st Store, log *slog.Logger) *Raiser {
	return &Raiser{store: st, log: log, Now: time.Now}
}

// Raise records the alert, unless one of the same kind for the same
// account was raised in the same period (Alert.Per) on any node. It
// reports whether it raised it. The trace event and the webhook POSTs
// follow from the record; the log line is written here.
func (r *Raiser) Raise(ctx context.Context, a Alert) (bool, error) {
	if a.Kind == "" || a.Message == "" {
		return false, fmt.Errorf("alert: kind and message are required (got %q, %q)", a.Kind, a.Message)
	}
	at := a.At
	if at.IsZero() {
		at = r.Now()
	}
	at = at.UTC()
	account := strings.ToLower(a.Account)
	rec := store.Alert{TenantID: a.TenantID, Time: at, Account: account, Kind: a.Kind, Message: a.Message, Values: a.Values}
	if a.Per >= 0 {
		per := a.Per
		if per == 0 {
			per = 24 * time.Hour
		}
		// Unix time is aligned to UTC midnight, so truncating to a day
		// (or an hour) gives UTC days (hours).
		window := a.Window
		if window.IsZero() {
			window = at
		}
		rec.Key = fmt.Sprintf("%s/%s/%s/%s", a.Kind, account, per, window.UTC().Truncate(per).Format(time.RFC3339))
	}
	rec, added, err := r.store.AddAlert(ctx, rec)
	if err != nil {
		return false, fmt.Errorf("raising alert %s for %s: %w", a.Kind, account, err)
	}
	if !added {
		return false, nil
	}
	args := []any{"tenant_id", a.TenantID, "account", account, "kind", a.Kind, "alert", a.Message}
	for _, k := range slices.Sorted(maps.Keys(a.Values)) {
		args = append(args, k, a.Values[k])
	}
	r.log.Warn("alert", args...)
	if r.OnRaise != nil {
		r.OnRaise()
	}
	return true, nil
}

// WarnLevelCrossed implements limits.Observer: a counter that reached its
// warning level raises a KindWarningLevel alert, once per subject, counter
// and UTC day. The engine calls it from an SMTP session, so the alert is
// recorded in the background; Wait waits for those.
func (r *Raiser) WarnLevelCrossed(_ context.Context, c limits.Crossing) {
	a := WarningLevel(c)
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := r.Raise(ctx, a); err != nil {
			r.log.Error("raising a warning level alert", "account", a.Account, "err", err)
		}
	})
}

// Wait waits for the alerts WarnLevelCrossed is recording.
func (r *Raiser) Wait() { r.wg.Wait() }

// WarningLevel is the alert of a warning level crossing.
func WarningLevel(c limits.Crossing) Alert {
	who := c.Subject.Name
	account := c.Subject.Name
	if c.Subject.Kind == "tenant" {
		who, account = "tenant "+c.Subject.Name, ""
	}
	return Alert{
		TenantID: c.Subject.TenantID,
		Account:  account,
		Kind:     KindWarningLevel,
		Message: fmt.Sprintf("%s reached %d%% of its daily limit: %d of %d recipients on %s (UTC)",
			who, c.WarnAt, c.Used, c.Limit, c.Window.UTC().Format(time.DateOnly)),
		Values: map[string]any{"scope": c.Subject.Kind, "used": c.Used, "limit": c.Limit, "warn_at_percent": c.WarnAt,
			"day": c.Window.UTC().Format(time.DateOnly), "counter": c.Key},
		At:  c.At,
		Per: 24 * time.Hour,
	}
}
