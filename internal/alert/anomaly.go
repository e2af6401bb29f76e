package alert

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
)

// The anomaly rule (docs/limits.md, "Alerts"):
//
//	volume(hour) > Factor × max(baseline(hour), Floor)
//
// where volume is the envelope recipients an account (the sender's primary
// address) had accepted in one UTC hour, and baseline is its mean hourly
// volume over the BaselineHours (7 days) before that hour, hours without
// traffic counting as 0. The floor keeps quiet accounts from alerting on
// small bursts: with the defaults an account needs more than 1,000
// recipients in an hour before its baseline matters. The rule judges the
// hour in progress (so that a leak is noticed while it happens) and the
// last full hour (which the hour in progress may have missed near its
// end); an account alerts at most once per hour.
const (
	DefaultAnomalyFactor   = 10
	DefaultAnomalyFloor    = 100
	BaselineHours          = 7 * 24
	DefaultAnomalyInterval = 5 * time.Minute
)

// UsageStore is where the anomaly rule reads hourly volumes (the usage
// counters of package usage).
type UsageStore interface {
	Tenants(ctx context.Context) ([]directory.Tenant, error)
	UsageHours(ctx context.Context, q store.UsageQuery) ([]store.UsageRow, error)
}

// Meter brings the usage counters up to date with trace (usage.Aggregator).
type Meter interface {
	CatchUp(ctx context.Context) error
}

// Anomaly applies the anomaly rule to every account of every tenant, every
// Interval.
type Anomaly struct {
	store  UsageStore
	raiser *Raiser
	log    *slog.Logger
	// Factor and Floor are the rule's; a Factor of 0 turns the rule off.
	Factor float64
	Floor  int64
	// Interval is how often Run checks.
	Interval time.Duration
	// Now is the rule's clock; tests set it.
	Now func() time.Time
	// Meter, when set, is asked to catch up before each check, so that
	// the counters include what trace recorded up to now.
	Meter Meter

	raised map[string]time.Time // alerts this node raised, by key, to spare the store a write per check
}

// NewAnomaly returns the rule with the default factor and floor, raising
// its alerts with r.
func NewAnomaly(st UsageStore, r *Raiser, log *slog.Logger) *Anomaly {
	return &Anomaly{store: st, raiser: r, log: log, Factor: DefaultAnomalyFactor, Floor: DefaultAnomalyFloor,
		Interval: DefaultAnomalyInterval, Now: time.Now, raised: map[string]time.Time{}}
}

// Run checks every Interval until ctx ends.
func (d *Anomaly) Run(ctx context.Context) {
	if d.Factor <= 0 {
		return
	}
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := d.Check(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("anomaly check failed", "err", err)
		}
	}
}

// Verdict is the rule applied to one account and hour.
type Verdict struct {
	Hour       time.Time
	Recipients int64
	// Baseline is the mean hourly volume of the BaselineHours before Hour.
	Baseline float64
	// Threshold is Factor × max(Baseline, Floor); the hour is anomalous
	// when Recipients is above it.
	Threshold float64
	Anomalous bool
}

// Judge applies the rule to the hour starting at hour, given an account's
// recipients by hour (starts of UTC hours).
func Judge(volume map[time.Time]int64, hour time.Time, factor float64, floor int64) Verdict {
	var sum int64
	for i := 1; i <= BaselineHours; i++ {
		sum += volume[hour.Add(-time.Duration(i)*time.Hour)]
	}
	v := Verdict{Hour: hour, Recipients: volume[hour], Baseline: float64(sum) / BaselineHours}
	v.Threshold = factor * max(v.Baseline, float64(floor))
	v.Anomalous = factor > 0 && float64(v.Recipients) > v.Threshold
	return v
}

// Check applies the rule to the hour in progress and the last full hour of
// every account, raises an alert for each anomalous one not raised yet, and
// returns how many it raised. Checks of one Anomaly must not overlap (Run
// makes one at a time).
func (d *Anomaly) Check(ctx context.Context) (int, error) {
	if d.Factor <= 0 {
		return 0, nil
	}
	if d.Meter != nil {
		if err := d.Meter.CatchUp(ctx); err != nil {
			return 0, fmt.Errorf("anomaly check: catching up with trace: %w", err)
		}
	}
	now := d.Now().UTC()
	current := now.Truncate(time.Hour)
	hours := []time.Time{current.Add(-time.Hour), current}
	for k, at := range d.raised {
		if at.Before(current.Add(-2 * time.Hour)) {
			delete(d.raised, k)
		}
	}
	tenants, err := d.store.Tenants(ctx)
	if err != nil {
		return 0, fmt.Errorf("anomaly check: %w", err)
	}
	raised := 0
	for _, t := range tenants {
		rows, err := d.store.UsageHours(ctx, store.UsageQuery{TenantID: t.ID,
			Since: hours[0].Add(-BaselineHours * time.Hour), Until: current.Add(time.Hour)})
		if err != nil {
			return raised, fmt.Errorf("anomaly check of tenant %s: %w", t.Name, err)
		}
		volumes := map[string]map[time.Time]int64{}
		for _, r := range rows {
			if volumes[r.Account] == nil {
				volumes[r.Account] = map[time.Time]int64{}
			}
			volumes[r.Account][r.Hour.UTC()] += r.Recipients
		}
		for account, volume := range volumes {
			for _, h := range hours {
				v := Judge(volume, h, d.Factor, d.Floor)
				if !v.Anomalous {
					continue
				}
				key := fmt.Sprintf("%d/%s/%s", t.ID, account, h.Format(time.RFC3339))
				if _, ok := d.raised[key]; ok {
					continue
				}
				ok, err := d.raiser.Raise(ctx, anomalyAlert(t.ID, account, v, d.Factor, d.Floor, now))
				if err != nil {
					return raised, err
				}
				d.raised[key] = h
				if ok {
					raised++
				}
				break // one alert per account and check is enough
			}
		}
	}
	return raised, nil
}

// anomalyAlert is the alert of an anomalous hour.
func anomalyAlert(tenantID int64, account string, v Verdict, factor float64, floor int64, now time.Time) Alert {
	return Alert{
		TenantID: tenantID,
		Account:  account,
		Kind:     KindAnomaly,
		Message: fmt.Sprintf("%s sent to %d recipients in the hour from %s UTC, above %.0f (%g × max(baseline %.1f an hour over the last 7 days, floor %d)); "+
			"if this is not expected, check the account's sign-ins: its password or app secret may have leaked",
			account, v.Recipients, v.Hour.Format("2006-01-02 15:04"), v.Threshold, factor, v.Baseline, floor),
		Values: map[string]any{"hour": v.Hour.Format(time.RFC3339), "recipients": v.Recipients, "baseline": v.Baseline,
			"threshold": v.Threshold, "factor": factor, "floor": floor},
		At:     now,
		Per:    time.Hour,
		Window: v.Hour,
	}
}
