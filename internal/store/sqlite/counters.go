package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"hve/internal/store"
)

// LeaseQuota implements store.Counters. The check and the increment run in
// one write transaction; SQLite has one writer at a time (and this store
// funnels writes through one connection), so racing leases are serialized.
func (s *Store) LeaseQuota(ctx context.Context, l store.QuotaLease) (granted, used int64, err error) {
	if err := l.Check(); err != nil {
		return 0, 0, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var sum int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(used), 0) FROM quota_counters WHERE key = ? AND bucket >= ? AND bucket <= ?`,
			l.Key, nanos(l.Since), nanos(l.Bucket)).Scan(&sum); err != nil {
			return err
		}
		used = sum
		g := l.Grant(sum)
		if g == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO quota_counters (key, bucket, used, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key, bucket) DO UPDATE SET used = used + excluded.used, expires_at = max(expires_at, excluded.expires_at)`,
			l.Key, nanos(l.Bucket), g, nanos(l.Expires))
		if err != nil {
			return err
		}
		granted, used = g, sum+g
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("quota lease of %s: %w", l.Key, err)
	}
	return granted, used, nil
}

// ReturnQuota implements store.Counters.
func (s *Store) ReturnQuota(ctx context.Context, key string, bucket time.Time, n int64) error {
	if n <= 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE quota_counters SET used = max(0, used - ?) WHERE key = ? AND bucket = ?`, n, key, nanos(bucket))
		return err
	})
	if err != nil {
		return fmt.Errorf("returning %d units of %s: %w", n, key, err)
	}
	return nil
}

// QuotaBuckets implements store.Counters.
func (s *Store) QuotaBuckets(ctx context.Context, key string, since time.Time) ([]store.QuotaBucket, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT bucket, used FROM quota_counters WHERE key = ? AND bucket >= ? AND used > 0 ORDER BY bucket`,
		key, nanos(since))
	if err != nil {
		return nil, fmt.Errorf("buckets of %s: %w", key, err)
	}
	list, err := collect(rows, func(row scanner) (b store.QuotaBucket, err error) {
		var start int64
		err = row.Scan(&start, &b.Used)
		b.Start = fromNanos(start)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("buckets of %s: %w", key, err)
	}
	return list, nil
}

// MarkQuotaEvent implements store.Counters.
func (s *Store) MarkQuotaEvent(ctx context.Context, key string, window, expires time.Time) (bool, error) {
	var first bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO quota_events (key, window_start, expires_at) VALUES (?, ?, ?)`,
			key, nanos(window), nanos(expires))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		first = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("marking event %s: %w", key, err)
	}
	return first, nil
}

// PruneQuota implements store.Counters.
func (s *Store) PruneQuota(ctx context.Context, now time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM quota_counters WHERE expires_at <= ?`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM quota_events WHERE expires_at <= ?`, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("pruning quota counters: %w", err)
	}
	return nil
}
