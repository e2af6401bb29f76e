package store

import (
	"context"
	"time"
)

// Webhooks holds each tenant's webhooks, the cursor of the notification
// dispatcher and its outbox: the POSTs still to be made.
//
// The dispatcher (package webhook) reads trace events in id order after
// its cursor and writes one outbox row per webhook and event in the same
// transaction as it moves the cursor, so that a crash neither loses nor
// repeats a notification, and several nodes may dispatch at once (the
// cursor is compared and set). Senders on any node lease due rows, as
// delivery leases queued messages.
type Webhooks interface {
	// CreateWebhook stores w; ID and CreatedAt are set by the store.
	CreateWebhook(ctx context.Context, w Webhook) (Webhook, error)
	// Webhooks lists a tenant's webhooks by id, secrets included (the
	// sender signs with them); tenantID 0 lists every tenant's. The list
	// is never nil.
	Webhooks(ctx context.Context, tenantID int64) ([]Webhook, error)
	// RemoveWebhook removes one of the tenant's webhooks (ErrNotFound for
	// another tenant's) with its outbox rows.
	RemoveWebhook(ctx context.Context, tenantID, id int64) error

	// NotifyCursor returns the id of the last trace event the dispatcher
	// handled. A new store starts at the trace's end: history is not
	// notified.
	NotifyCursor(ctx context.Context) (int64, error)
	// AddNotifications stores outbox rows (pending, due at their
	// NextAttemptAt) and moves the cursor from from to to, in one
	// transaction. When the cursor is no longer at from it changes nothing
	// and returns ErrStale. A row for a webhook and trace event that the
	// outbox already has is left out.
	AddNotifications(ctx context.Context, from, to int64, rows []WebhookDelivery) error
	// ClaimWebhookDeliveries leases up to limit pending rows due at now and
	// not leased by a live owner to owner until now+lease, oldest due
	// first. Each carries its webhook's URL and secret.
	ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]WebhookDelivery, error)
	// FinishWebhookDelivery records the outcome of owner's attempt at row
	// d.ID: its State (WebhookDone, WebhookFailed, or WebhookPending again
	// with NextAttemptAt), Attempts and LastError; the lease ends. It
	// returns ErrStale when owner no longer holds the lease (and
	// ErrNotFound when the row is gone with its webhook).
	FinishWebhookDelivery(ctx context.Context, owner string, d WebhookDelivery) error
	// WebhookDeliveries lists a webhook's outbox rows, oldest first,
	// without URL and secret.
	WebhookDeliveries(ctx context.Context, webhookID int64) ([]WebhookDelivery, error)
	// PruneWebhookDeliveries removes done and failed rows created before
	// the given time and returns how many.
	PruneWebhookDeliveries(ctx context.Context, createdBefore time.Time) (int, error)
}

// Webhook is an HTTPS (or HTTP) endpoint of a tenant that is sent a signed
// JSON POST for each event it subscribes to.
type Webhook struct {
	ID       int64  `json:"id"`
	TenantID int64  `json:"-"`
	URL      string `json:"url"`
	// Secret is the HMAC-SHA256 key of the X-Hve-Signature header. It is
	// kept as given because every POST is signed with it, and never shown
	// after creation.
	Secret string `json:"-"`
	// SecretHint is the secret's first characters, to tell secrets apart.
	SecretHint string `json:"secret_hint"`
	// Events are the event names the webhook receives (see package
	// webhook: alert, delivered, deferred, failed).
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// Wants reports whether the webhook subscribes to event.
func (w Webhook) Wants(event string) bool {
	for _, e := range w.Events {
		if e == event {
			return true
		}
	}
	return false
}

// The states of a webhook delivery (an outbox row).
const (
	// WebhookPending: not sent yet, or to be tried again at NextAttemptAt.
	WebhookPending = "pending"
	// WebhookDone: the endpoint answered 2xx.
	WebhookDone = "done"
	// WebhookFailed: given up after the retries (see package webhook).
	WebhookFailed = "failed"
)

// WebhookDelivery is one outbox row: one event to POST to one webhook.
type WebhookDelivery struct {
	ID        int64
	WebhookID int64
	TenantID  int64
	// EventID is the trace event the row tells of; one row per webhook
	// and trace event.
	EventID int64
	// Event is the webhook event name (alert, delivered, ...).
	Event string
	// Payload is the JSON body, fixed when the row is made so that every
	// attempt sends (and signs) the same bytes.
	Payload       []byte
	State         string
	Attempts      int
	NextAttemptAt time.Time
	// LastError says why the last attempt failed.
	LastError string
	CreatedAt time.Time
	// URL and Secret are the webhook's, filled in by
	// ClaimWebhookDeliveries.
	URL, Secret string
}

// Alerts holds raised alerts (package alert). Each has a trace event
// (trace.EventAlert) through which the dispatcher hands it to webhooks.
type Alerts interface {
	// AddAlert records an alert and its trace event in one transaction;
	// ID, EventID and Event's id are set by the store. An alert whose Key
	// is not empty is recorded once per tenant and key, on any node: when
	// one is already there it changes nothing and returns false.
	AddAlert(ctx context.Context, a Alert) (Alert, bool, error)
	// AlertsByEvent returns the alerts whose trace events have the given
	// ids, in any order; ids without an alert are left out.
	AlertsByEvent(ctx context.Context, eventIDs []int64) ([]Alert, error)
}

// Alert is an alert raised about an account (or a whole tenant).
type Alert struct {
	ID       int64
	TenantID int64
	Time     time.Time
	// Account is the account's primary address; empty for the tenant.
	Account string
	// Kind names the rule that raised it (warning_level, anomaly, ...).
	Kind string
	// Message is the text for people.
	Message string
	// Values are the numbers behind the message, for programs.
	Values map[string]any
	// Key makes the alert happen once: the store records one alert per
	// tenant and key. Empty means no such limit.
	Key string
	// EventID is the id of the alert's trace event.
	EventID int64
}
