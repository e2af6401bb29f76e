package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
)

var _ store.Revocations = (*Store)(nil)

// revokeChannel is the NOTIFY channel of session revocations. Channels are
// per database, not per schema, so each notification names the schema it
// was sent from and listeners skip those of other schemas (other
// deployments, or tests, sharing the database).
const revokeChannel = "hve_revoke"

// directoryChannel is the NOTIFY channel of directory changes, sent by the
// directory tables' triggers (migration 0003); a notification carries the
// schema of the change.
const directoryChannel = "hve_directory"

// Listening: how long the listener waits for a notification before it
// checks that its connection still works (a connection cut without a
// reset would otherwise go unnoticed), and the bounds of its pause before
// listening again after a failure.
const (
	listenCheckEvery = 30 * time.Second
	listenRetryMin   = 500 * time.Millisecond
	listenRetryMax   = 30 * time.Second
)

// revokeMessage is the payload of a notification.
type revokeMessage struct {
	Schema string `json:"schema"`
	store.Revocation
}

// PublishRevocation sends r to every node listening on the database (NOTIFY
// hve_revoke).
func (s *Store) PublishRevocation(ctx context.Context, r store.Revocation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding a revocation: %w", err)
	}
	// The schema is added by the database, which knows it from the
	// search path.
	_, err = s.pool.Exec(ctx, `SELECT pg_notify($1, jsonb_set($2::jsonb, '{schema}', to_jsonb(current_schema()))::text)`,
		revokeChannel, string(b))
	if err != nil {
		return fmt.Errorf("publishing a revocation: %w", err)
	}
	return nil
}

// ListenRevocations listens for revocations on a connection of its own
// (LISTEN hve_revoke), taken out of the pool for as long as it lasts. The
// same connection hears the directory changes of other nodes (LISTEN
// hve_directory) and moves the directory version for each; each time it
// starts listening (again) it moves it too, for what it may have missed.
func (s *Store) ListenRevocations(ctx context.Context, l store.RevocationListener) {
	pause := listenRetryMin
	for ctx.Err() == nil {
		err := s.listen(ctx, l, func() { pause = listenRetryMin })
		if ctx.Err() != nil {
			return
		}
		if l.Lost != nil {
			l.Lost(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, listenRetryMax)
	}
}

// listen listens on one connection until it fails or ctx is done. It calls
// listening once the connection listens.
func (s *Store) listen(ctx context.Context, l store.RevocationListener, listening func()) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting to listen for revocations: %w", err)
	}
	// A connection that listens must not go back to the pool, where other
	// work would get it with its notifications.
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("listening for revocations: %w", err)
	}
	for _, ch := range []string{revokeChannel, directoryChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listening for revocations: %w", err)
		}
	}
	s.dirVersion.Add(1)
	listening()
	if l.Listening != nil {
		l.Listening()
	}
	for {
		wait, cancel := context.WithTimeout(ctx, listenCheckEvery)
		n, err := conn.WaitForNotification(wait)
		timedOut := wait.Err() != nil
		cancel()
		if n != nil && n.Channel == directoryChannel {
			if n.Payload == schema {
				s.dirVersion.Add(1)
			}
		} else if n != nil {
			var m revokeMessage
			// Skip what is not ours: another deployment sharing the
			// database.
			if json.Unmarshal([]byte(n.Payload), &m) == nil && m.Schema == schema {
				l.Revoked(m.Revocation)
			}
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && timedOut:
			// No news: check that the connection still works. A timeout
			// leaves a pgx connection usable.
			ping, cancel := context.WithTimeout(ctx, listenCheckEvery)
			err = conn.Ping(ping)
			cancel()
			if err != nil {
				return fmt.Errorf("listening for revocations: %w", err)
			}
		case err != nil:
			return fmt.Errorf("listening for revocations: %w", err)
		}
	}
}
