package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
	"hve/internal/trace"
)

// CreateWebhook stores a tenant's webhook.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	w.CreatedAt = time.Now().UTC()
	if w.Events == nil {
		w.Events = []string{}
	}
	err := s.pool.QueryRow(ctx, `INSERT INTO webhooks (tenant_id, url, secret, events, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		w.TenantID, w.URL, w.Secret, jsonList(w.Events), nanos(w.CreatedAt)).Scan(&w.ID)
	if err != nil {
		return w, fmt.Errorf("webhook %s: %w", w.URL, mapErr(err))
	}
	w.SecretHint = store.SecretHint(w.Secret)
	return w, nil
}

// Webhooks lists a tenant's webhooks (every tenant's for tenantID 0).
func (s *Store) Webhooks(ctx context.Context, tenantID int64) ([]store.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, url, secret, events, created_at FROM webhooks
		WHERE $1::bigint = 0 OR tenant_id = $1 ORDER BY id`, tenantID)
	list, err := collect(rows, err, func(row scanner) (w store.Webhook, err error) {
		var events []byte
		var created int64
		if err = row.Scan(&w.ID, &w.TenantID, &w.URL, &w.Secret, &events, &created); err != nil {
			return w, err
		}
		w.CreatedAt, w.SecretHint = fromNanos(created), store.SecretHint(w.Secret)
		return w, fromJSONList(events, &w.Events)
	})
	if err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	return list, nil
}

// RemoveWebhook removes a webhook; its outbox rows go with it (ON DELETE
// CASCADE).
func (s *Store) RemoveWebhook(ctx context.Context, tenantID, id int64) error {
	err := execOne(ctx, s.pool, fmt.Sprintf("webhook %d", id), `DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return fmt.Errorf("removing webhook %d: %w", id, err)
	}
	return nil
}

// NotifyCursor returns the id of the last trace event the dispatcher
// handled.
func (s *Store) NotifyCursor(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT last_event_id FROM notify_cursor WHERE id = 1`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the notification cursor: %w", mapErr(err))
	}
	return id, nil
}

// AddNotifications stores outbox rows and moves the cursor, in one
// transaction. The cursor moves first: its row lock makes a racing
// dispatcher from the same cursor wait for this commit, then find the
// cursor moved and add nothing (ErrStale).
func (s *Store) AddNotifications(ctx context.Context, from, to int64, rows []store.WebhookDelivery) error {
	now := nanos(time.Now())
	n := len(rows)
	var (
		webhook, event, next, created = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		name                          = make([]string, n)
		payload                       = make([][]byte, n)
	)
	for i, r := range rows {
		created[i] = now
		if !r.CreatedAt.IsZero() {
			created[i] = nanos(r.CreatedAt)
		}
		next[i] = created[i]
		if !r.NextAttemptAt.IsZero() {
			next[i] = nanos(r.NextAttemptAt)
		}
		webhook[i], event[i], name[i], payload[i] = r.WebhookID, r.EventID, r.Event, r.Payload
		if payload[i] == nil {
			payload[i] = []byte{} // NULL would break the NOT NULL column
		}
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE notify_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id = $2`, to, from)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return store.ErrStale
		}
		if n == 0 {
			return nil
		}
		// A webhook removed since the dispatcher listed it gets no rows:
		// the join finds nothing, and FOR KEY SHARE waits for a removal in
		// progress and then leaves its webhook out, rather than failing on
		// the foreign key.
		_, err = tx.Exec(ctx, `INSERT INTO webhook_outbox (webhook_id, tenant_id, event_id, event, payload, state, next_attempt_at, created_at)
			SELECT w.id, w.tenant_id, r.event_id, r.event, r.payload, 'pending', r.next, r.created
			FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[])
				AS r(webhook_id, event_id, event, payload, next, created)
			JOIN webhooks w ON w.id = r.webhook_id
			FOR KEY SHARE OF w
			ON CONFLICT (webhook_id, event_id) DO NOTHING`,
			webhook, event, name, payload, next, created)
		if err != nil {
			return fmt.Errorf("outbox rows: %w", err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrStale) {
		return fmt.Errorf("adding notifications up to trace event %d: %w", to, err)
	}
	return err
}

const outboxColumns = `o.id, o.webhook_id, o.tenant_id, o.event_id, o.event, o.payload, o.state, o.attempts, o.next_attempt_at, o.last_error, o.created_at`

func scanOutbox(row scanner, extra ...any) (d store.WebhookDelivery, err error) {
	var next, created int64
	dest := append([]any{&d.ID, &d.WebhookID, &d.TenantID, &d.EventID, &d.Event, &d.Payload, &d.State, &d.Attempts, &next, &d.LastError, &created}, extra...)
	err = row.Scan(dest...)
	d.NextAttemptAt, d.CreatedAt = fromNanos(next), fromNanos(created)
	return d, err
}

// ClaimWebhookDeliveries leases due outbox rows to owner, in one
// statement. SKIP LOCKED lets racing senders each take other rows; a row
// another sender leased and committed meanwhile fails the recheck of
// lease_until under its lock and is left out.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]store.WebhookDelivery, error) {
	rows, err := s.pool.Query(ctx, `
		WITH claimed AS (
			UPDATE webhook_outbox SET lease_owner = $1, lease_until = $2
			WHERE id IN (
				SELECT id FROM webhook_outbox
				WHERE state = 'pending' AND next_attempt_at <= $3 AND lease_until < $3
				ORDER BY next_attempt_at, id LIMIT $4
				FOR UPDATE SKIP LOCKED)
			RETURNING *)
		SELECT `+outboxColumns+`, w.url, w.secret
		FROM claimed o JOIN webhooks w ON w.id = o.webhook_id
		ORDER BY o.next_attempt_at, o.id`,
		owner, nanos(now.Add(lease)), nanos(now), limit)
	list, err := collect(rows, err, func(row scanner) (store.WebhookDelivery, error) {
		var url, secret string
		d, err := scanOutbox(row, &url, &secret)
		d.URL, d.Secret = url, secret
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("claiming webhook deliveries: %w", err)
	}
	return list, nil
}

// FinishWebhookDelivery records the outcome of an attempt.
func (s *Store) FinishWebhookDelivery(ctx context.Context, owner string, d store.WebhookDelivery) error {
	if err := store.CheckWebhookState(d); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4,
			lease_owner = '', lease_until = 0
		WHERE id = $5 AND lease_owner = $6 AND state = 'pending'`,
		d.State, d.Attempts, nanos(d.NextAttemptAt), d.LastError, d.ID, owner)
	if err != nil {
		return fmt.Errorf("webhook delivery %d: %w", d.ID, mapErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing changed: tell a row gone with its webhook from one whose
	// lease passed to another owner.
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_outbox WHERE id = $1)`, d.ID).Scan(&exists); err != nil {
		return fmt.Errorf("webhook delivery %d: %w", d.ID, mapErr(err))
	}
	if !exists {
		return fmt.Errorf("webhook delivery %d: %w", d.ID, store.ErrNotFound)
	}
	return fmt.Errorf("webhook delivery %d: %w", d.ID, store.ErrStale)
}

// WebhookDeliveries lists a webhook's outbox rows.
func (s *Store) WebhookDeliveries(ctx context.Context, webhookID int64) ([]store.WebhookDelivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+outboxColumns+` FROM webhook_outbox o WHERE o.webhook_id = $1 ORDER BY o.id`, webhookID)
	list, err := collect(rows, err, func(row scanner) (store.WebhookDelivery, error) { return scanOutbox(row) })
	if err != nil {
		return nil, fmt.Errorf("deliveries of webhook %d: %w", webhookID, err)
	}
	return list, nil
}

// PruneWebhookDeliveries removes finished outbox rows.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, createdBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_outbox WHERE state IN ('done', 'failed') AND created_at < $1`, nanos(createdBefore))
	if err != nil {
		return 0, fmt.Errorf("pruning webhook deliveries: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

// AddAlert records an alert and its trace event.
func (s *Store) AddAlert(ctx context.Context, a store.Alert) (store.Alert, bool, error) {
	if a.Time.IsZero() {
		a.Time = time.Now()
	}
	a.Time = a.Time.UTC()
	if a.Values == nil {
		a.Values = map[string]any{}
	}
	vals, err := json.Marshal(a.Values)
	if err != nil {
		return a, false, fmt.Errorf("alert %s of %s: values: %w", a.Kind, a.Account, err)
	}
	added := false
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// The alert goes first: when its key is taken (on any node: the
		// insert waits for a racing one to commit), nothing else is
		// written.
		rows, err := tx.Query(ctx, `INSERT INTO alerts (tenant_id, time, account, kind, message, vals, dedup_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (tenant_id, dedup_key) WHERE dedup_key != '' DO NOTHING
			RETURNING id`, a.TenantID, nanos(a.Time), a.Account, a.Kind, a.Message, string(vals), a.Key)
		ids, err := collect(rows, err, func(row scanner) (id int64, err error) { return id, row.Scan(&id) })
		if err != nil || len(ids) == 0 {
			return err
		}
		a.ID = ids[0]
		// The event goes through insertEvents, for the order of event ids
		// (see there); the alert learns its id in one short update after.
		events, err := insertEvents(ctx, tx, []trace.Event{a.TraceEvent()})
		if err != nil {
			return err
		}
		a.EventID = events[0]
		if _, err := tx.Exec(ctx, `UPDATE alerts SET event_id = $1 WHERE id = $2`, a.EventID, a.ID); err != nil {
			return err
		}
		added = true
		return nil
	})
	if err != nil {
		return a, false, fmt.Errorf("alert %s of %s: %w", a.Kind, a.Account, err)
	}
	return a, added, nil
}

// AlertsByEvent returns the alerts of the given trace events.
func (s *Store) AlertsByEvent(ctx context.Context, eventIDs []int64) ([]store.Alert, error) {
	if len(eventIDs) == 0 {
		return []store.Alert{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, tenant_id, time, account, kind, message, vals, dedup_key, event_id FROM alerts
		WHERE event_id = ANY($1)`, eventIDs)
	list, err := collect(rows, err, func(row scanner) (a store.Alert, err error) {
		var t int64
		var vals []byte
		if err = row.Scan(&a.ID, &a.TenantID, &t, &a.Account, &a.Kind, &a.Message, &vals, &a.Key, &a.EventID); err != nil {
			return a, err
		}
		a.Time = fromNanos(t)
		return a, json.Unmarshal(vals, &a.Values)
	})
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	return list, nil
}
