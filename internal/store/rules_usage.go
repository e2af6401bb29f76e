package store

import (
	"fmt"
	"strings"

	"hve/internal/trace"
)

// Rules of usage, webhooks, alerts and quota counters that every store
// applies the same way.

// Check rejects a lease that could never be granted sensibly: one of no
// units, or one that wants fewer than it needs.
func (l QuotaLease) Check() error {
	if l.Need < 1 || l.Want < l.Need {
		return fmt.Errorf("quota lease of %s: need %d, want %d: want at least one unit, and want >= need", l.Key, l.Need, l.Want)
	}
	return nil
}

// Grant is the number of units the lease gets when the counter's buckets
// since l.Since hold used units: l.Want if they fit under l.Limit, else as
// many as fit if that is at least l.Need, else 0.
func (l QuotaLease) Grant(used int64) int64 {
	g := min(l.Want, l.Limit-used)
	if g < l.Need {
		return 0
	}
	return g
}

// SecretHint is the first characters of a webhook secret: enough to tell
// two apart, too few to sign with. A generated secret's "whsec_" prefix is
// not counted.
func SecretHint(secret string) string {
	n := 4
	if strings.HasPrefix(secret, "whsec_") {
		n += len("whsec_")
	}
	if len(secret) <= 2*n {
		return ""
	}
	return secret[:n]
}

// CheckWebhookState rejects an outcome of a webhook delivery that is not
// one of its states.
func CheckWebhookState(d WebhookDelivery) error {
	switch d.State {
	case WebhookPending, WebhookDone, WebhookFailed:
		return nil
	}
	return fmt.Errorf("webhook delivery %d: state %q: %w", d.ID, d.State, ErrInvalid)
}

// TraceEvent is the trace event of an alert: the account as the sender,
// the kind and the text as the detail.
func (a Alert) TraceEvent() trace.Event {
	return trace.Event{TenantID: a.TenantID, Time: a.Time, Sender: strings.ToLower(a.Account), Event: trace.EventAlert,
		Detail: a.Kind + ": " + a.Message}
}

// DetailQueueIDs lists the queue ids of a detailed report page's anchors
// (a message's first Received event), leaving out refusals, which have
// none.
func DetailQueueIDs(anchors []DetailRow) []string {
	var ids []string
	for _, a := range anchors {
		if a.QueueID != "" {
			ids = append(ids, a.QueueID)
		}
	}
	return ids
}

// MergeDetailRows makes a detailed report page from its anchors and the
// rows of their messages' recipients by queue id: a refusal is its own row,
// a message one row per recipient, each with the anchor's id and time so
// that pages follow the anchors' order.
func MergeDetailRows(anchors []DetailRow, recipients map[string][]DetailRow) []DetailRow {
	list := []DetailRow{}
	for _, a := range anchors {
		if a.QueueID == "" {
			list = append(list, a)
			continue
		}
		for _, r := range recipients[a.QueueID] {
			r.ID, r.Time, r.Received = a.ID, a.Time, a.Time
			list = append(list, r)
		}
	}
	return list
}
