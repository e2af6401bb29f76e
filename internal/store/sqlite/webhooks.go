package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"hve/internal/store"
)

// CreateWebhook stores a tenant's webhook.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook) (store.Webhook, error) {
	w.CreatedAt = time.Now().UTC()
	if w.Events == nil {
		w.Events = []string{}
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhooks (tenant_id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?)`,
			w.TenantID, w.URL, w.Secret, jsonList(w.Events), nanos(w.CreatedAt))
		if err != nil {
			return err
		}
		w.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return w, fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	w.SecretHint = store.SecretHint(w.Secret)
	return w, nil
}

// Webhooks lists a tenant's webhooks (every tenant's for tenantID 0).
func (s *Store) Webhooks(ctx context.Context, tenantID int64) ([]store.Webhook, error) {
	q := `SELECT id, tenant_id, url, secret, events, created_at FROM webhooks`
	var args []any
	if tenantID != 0 {
		q += ` WHERE tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing webhooks: %w", err)
	}
	list, err := collect(rows, func(row scanner) (w store.Webhook, err error) {
		var events string
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
	return nonNil(list), nil
}

// RemoveWebhook removes a webhook and its outbox rows.
func (s *Store) RemoveWebhook(ctx context.Context, tenantID, id int64) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The rows go explicitly too: the cascade needs foreign keys on,
		// which a copied database might not have.
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE webhook_id = ? AND tenant_id = ?`, id, tenantID); err != nil {
			return err
		}
		return execOne(ctx, tx, fmt.Sprintf("webhook %d", id), `DELETE FROM webhooks WHERE tenant_id = ? AND id = ?`, tenantID, id)
	})
	if err != nil {
		return fmt.Errorf("removing webhook %d: %w", id, err)
	}
	return nil
}

// NotifyCursor returns the id of the last trace event the dispatcher
// handled.
func (s *Store) NotifyCursor(ctx context.Context) (int64, error) {
	var id int64
	if err := s.r.QueryRowContext(ctx, `SELECT last_event_id FROM notify_cursor WHERE id = 1`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the notification cursor: %w", mapErr(err))
	}
	return id, nil
}

// AddNotifications stores outbox rows and moves the cursor, in one
// transaction.
func (s *Store) AddNotifications(ctx context.Context, from, to int64, rows []store.WebhookDelivery) error {
	now := nanos(time.Now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE notify_cursor SET last_event_id = ? WHERE id = 1 AND last_event_id = ?`, to, from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			return store.ErrStale
		}
		if len(rows) == 0 {
			return nil
		}
		// A webhook removed since the dispatcher listed it gets no rows
		// (the SELECT finds nothing).
		ins, err := tx.PrepareContext(ctx, `INSERT INTO webhook_outbox (webhook_id, tenant_id, event_id, event, payload, state, next_attempt_at, created_at)
			SELECT id, tenant_id, ?, ?, ?, 'pending', ?, ? FROM webhooks WHERE id = ?
			ON CONFLICT (webhook_id, event_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range rows {
			created := now
			if !r.CreatedAt.IsZero() {
				created = nanos(r.CreatedAt)
			}
			next := created
			if !r.NextAttemptAt.IsZero() {
				next = nanos(r.NextAttemptAt)
			}
			if _, err := ins.ExecContext(ctx, r.EventID, r.Event, r.Payload, next, created, r.WebhookID); err != nil {
				return fmt.Errorf("outbox row for webhook %d, event %d: %w", r.WebhookID, r.EventID, err)
			}
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

// ClaimWebhookDeliveries leases due outbox rows to owner.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, owner string, now time.Time, limit int, lease time.Duration) ([]store.WebhookDelivery, error) {
	var list []store.WebhookDelivery
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			UPDATE webhook_outbox SET lease_owner = ?, lease_until = ?
			WHERE id IN (
				SELECT id FROM webhook_outbox
				WHERE state = 'pending' AND next_attempt_at <= ? AND lease_until < ?
				ORDER BY next_attempt_at, id LIMIT ?)
			RETURNING id`,
			owner, nanos(now.Add(lease)), nanos(now), nanos(now), limit)
		if err != nil {
			return err
		}
		ids, err := collect(rows, func(row scanner) (id int64, err error) {
			err = row.Scan(&id)
			return id, err
		})
		if err != nil || len(ids) == 0 {
			return err
		}
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		rows, err = tx.QueryContext(ctx, `SELECT `+outboxColumns+`, w.url, w.secret
			FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
			WHERE o.id IN (?`+strings.Repeat(", ?", len(ids)-1)+`) ORDER BY o.next_attempt_at, o.id`, args...)
		if err != nil {
			return err
		}
		list, err = collect(rows, func(row scanner) (store.WebhookDelivery, error) {
			var url, secret string
			d, err := scanOutbox(row, &url, &secret)
			d.URL, d.Secret = url, secret
			return d, err
		})
		return err
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
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_outbox SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?,
			lease_owner = '', lease_until = 0
			WHERE id = ? AND lease_owner = ? AND state = 'pending'`,
			d.State, d.Attempts, nanos(d.NextAttemptAt), d.LastError, d.ID, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM webhook_outbox WHERE id = ?`, d.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return store.ErrStale
	})
	if err != nil {
		return fmt.Errorf("webhook delivery %d: %w", d.ID, err)
	}
	return nil
}

// WebhookDeliveries lists a webhook's outbox rows.
func (s *Store) WebhookDeliveries(ctx context.Context, webhookID int64) ([]store.WebhookDelivery, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+outboxColumns+` FROM webhook_outbox o WHERE o.webhook_id = ? ORDER BY o.id`, webhookID)
	if err != nil {
		return nil, fmt.Errorf("deliveries of webhook %d: %w", webhookID, err)
	}
	list, err := collect(rows, func(row scanner) (store.WebhookDelivery, error) { return scanOutbox(row) })
	if err != nil {
		return nil, fmt.Errorf("deliveries of webhook %d: %w", webhookID, err)
	}
	return nonNil(list), nil
}

// PruneWebhookDeliveries removes finished outbox rows.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, createdBefore time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE state IN ('done', 'failed') AND created_at < ?`, nanos(createdBefore))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning webhook deliveries: %w", err)
	}
	return int(n), nil
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
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// The alert goes first: when its key is taken, nothing else is
		// written.
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO alerts (tenant_id, time, account, kind, message, vals, dedup_key)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, a.TenantID, nanos(a.Time), a.Account, a.Kind, a.Message, string(vals), a.Key)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		e := a.TraceEvent()
		res, err = tx.ExecContext(ctx, `INSERT INTO trace_events
			(tenant_id, time, queue_id, message_id, sender, recipient, event, status, detail, client_ip, subject, size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.TenantID, nanos(e.Time), e.QueueID, e.MessageID, e.Sender, e.Recipient, e.Event, e.Status, e.Detail, e.ClientIP, e.Subject, e.Size)
		if err != nil {
			return err
		}
		if a.EventID, err = res.LastInsertId(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alerts SET event_id = ? WHERE id = ?`, a.EventID, a.ID); err != nil {
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
	args := make([]any, len(eventIDs))
	for i, id := range eventIDs {
		args[i] = id
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, tenant_id, time, account, kind, message, vals, dedup_key, event_id FROM alerts
		WHERE event_id IN (?`+strings.Repeat(", ?", len(eventIDs)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	list, err := collect(rows, func(row scanner) (a store.Alert, err error) {
		var t int64
		var vals string
		if err = row.Scan(&a.ID, &a.TenantID, &t, &a.Account, &a.Kind, &a.Message, &vals, &a.Key, &a.EventID); err != nil {
			return a, err
		}
		a.Time = fromNanos(t)
		return a, json.Unmarshal([]byte(vals), &a.Values)
	})
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	return nonNil(list), nil
}
