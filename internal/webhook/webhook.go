// Package webhook tells the outside world what happened, without anyone
// polling trace: signed JSON POSTs to each tenant's webhooks for delivery
// events (delivered, deferred, failed, per recipient) and alerts, and
// plain-text failure reports to an account's failure report address.
//
// Like usage metering, it works from message trace rather than being called
// from the SMTP and delivery code:
//
//   - The Dispatcher (one per node; several may run) reads trace events in
//     id order after a cursor in the database. For each event a webhook
//     subscribes to it writes one outbox row, in the same transaction as it
//     moves the cursor; for each message of an account with a failure
//     report address that ended with failed recipients it queues one
//     report message.
//   - The Sender (one per node) leases due outbox rows, POSTs them, and
//     retries failures with backoff (Schedule) for up to a day.
//
// See docs/webhooks.md for the payloads and how to verify a signature.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"hve/internal/password"
	"hve/internal/trace"
)

// The events a webhook can subscribe to.
const (
	// EventAlert: an alert was raised (package alert).
	EventAlert = "alert"
	// EventDelivered: a recipient was delivered (trace Delivered).
	EventDelivered = "delivered"
	// EventDeferred: an attempt failed temporarily; delivery tries again
	// (trace Deferred).
	EventDeferred = "deferred"
	// EventFailed: a recipient failed for good (trace Failed).
	EventFailed = "failed"
)

// Events lists every event, the default subscription of a new webhook.
var Events = []string{EventAlert, EventDelivered, EventDeferred, EventFailed}

// The HTTP headers of a POST.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body
	// keyed with the webhook's secret.
	HeaderSignature = "X-Hve-Signature"
	// HeaderEvent names the event (alert, delivered, ...).
	HeaderEvent = "X-Hve-Event"
	// HeaderDelivery is the outbox row's id: the same on every retry of
	// the same notification, so that a receiver can drop repeats.
	HeaderDelivery = "X-Hve-Delivery"
)

// webhookEvent maps a trace event name to the webhook event it is, or "".
func webhookEvent(traceEvent string) string {
	switch traceEvent {
	case trace.EventDelivered:
		return EventDelivered
	case trace.EventDeferred:
		return EventDeferred
	case trace.EventFailed:
		return EventFailed
	case trace.EventAlert:
		return EventAlert
	}
	return ""
}

// ParseEvents reads a subscription: event names separated by commas, in
// any letter case; "all" or nothing means every event. The result is in the
// order of Events, without repeats.
func ParseEvents(list []string) ([]string, error) {
	want := map[string]bool{}
	for _, item := range list {
		for _, e := range strings.Split(item, ",") {
			e = strings.ToLower(strings.TrimSpace(e))
			switch {
			case e == "":
			case e == "all":
				for _, ev := range Events {
					want[ev] = true
				}
			case slices.Contains(Events, e):
				want[e] = true
			default:
				return nil, fmt.Errorf("event %q is not one of %s (or all)", e, strings.Join(Events, ", "))
			}
		}
	}
	if len(want) == 0 {
		return slices.Clone(Events), nil
	}
	var out []string
	for _, e := range Events {
		if want[e] {
			out = append(out, e)
		}
	}
	return out, nil
}

// CheckURL checks that a webhook URL is an absolute http or https URL
// with a host, and returns it as given.
func CheckURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("webhook URL %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("webhook URL %q: want an absolute http:// or https:// URL", raw)
	}
	if u.Fragment != "" {
		return "", fmt.Errorf("webhook URL %q: a #fragment is never sent; remove it", raw)
	}
	return raw, nil
}

// MinSecretLength is the shortest secret an admin may choose.
const MinSecretLength = 16

// NewSecret returns a random signing secret: "whsec_" and 32 letters and
// digits (about 188 bits).
func NewSecret() string {
	return "whsec_" + password.Generate(32)
}

// Sign returns the X-Hve-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 of body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature (an X-Hve-Signature value) is body's
// signature with secret. It compares in constant time. Receivers written
// in Go may use it.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(strings.TrimSpace(signature)))
}

// Payload is the JSON body of a POST. Delivery events carry the message
// and recipient fields; alerts carry account, kind and values.
type Payload struct {
	// Event is the webhook event (alert, delivered, deferred, failed).
	Event string `json:"event"`
	// EventID is the trace event's id: unique per tenant and event,
	// increasing in the order things happened.
	EventID int64     `json:"event_id"`
	Time    time.Time `json:"time"`
	// Tenant is the tenant's name.
	Tenant    string `json:"tenant"`
	QueueID   string `json:"queue_id,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	Sender    string `json:"sender,omitempty"`
	Recipient string `json:"recipient,omitempty"`
	Subject   string `json:"subject,omitempty"`
	// Status is the trace status the event set (Delivered, Pending,
	// Failed).
	Status string `json:"status,omitempty"`
	// Detail is the trace event's detail: the next hop's reply, the
	// reason, or an alert's text.
	Detail string `json:"detail"`
	// Account, Kind and Values describe an alert.
	Account string         `json:"account,omitempty"`
	Kind    string         `json:"kind,omitempty"`
	Values  map[string]any `json:"values,omitempty"`
}
