package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hve/internal/store"
)

// LeaseQuota implements store.Counters.
//
// The check (a sum over buckets) and the increment must be one atomic step
// across nodes, and a bucket not yet created has no row to lock. So the
// transaction first takes an advisory lock on the key (a hash of it; two
// keys that collide merely wait for each other), held until commit: racing
// leases of one key run one after the other, and each one's sum, read in a
// statement that starts after the lock is granted, sees every earlier
// lease. Unlike serializable, this never aborts and retries under
// contention, and leases of other keys do not wait.
func (s *Store) LeaseQuota(ctx context.Context, l store.QuotaLease) (granted, used int64, err error) {
	if err := l.Check(); err != nil {
		return 0, 0, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, l.Key); err != nil {
			return fmt.Errorf("locking the counter: %w", err)
		}
		var sum int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(used), 0) FROM quota_counters WHERE key = $1 AND bucket >= $2 AND bucket <= $3`,
			l.Key, nanos(l.Since), nanos(l.Bucket)).Scan(&sum); err != nil {
			return err
		}
		used = sum
		g := l.Grant(sum)
		if g == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO quota_counters (key, bucket, used, expires_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key, bucket) DO UPDATE SET used = quota_counters.used + excluded.used,
				expires_at = greatest(quota_counters.expires_at, excluded.expires_at)`,
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

// ReturnQuota implements store.Counters. It needs no lock on the key: the
// one statement decrements atomically, and a lease racing it can only have
// counted the returned units as still used (granting less, never more).
func (s *Store) ReturnQuota(ctx context.Context, key string, bucket time.Time, n int64) error {
	if n <= 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `UPDATE quota_counters SET used = greatest(0, used - $1) WHERE key = $2 AND bucket = $3`, n, key, nanos(bucket))
	if err != nil {
		return fmt.Errorf("returning %d units of %s: %w", n, key, mapErr(err))
	}
	return nil
}

// QuotaBuckets implements store.Counters.
func (s *Store) QuotaBuckets(ctx context.Context, key string, since time.Time) ([]store.QuotaBucket, error) {
	rows, err := s.pool.Query(ctx, `SELECT bucket, used FROM quota_counters WHERE key = $1 AND bucket >= $2 AND used > 0 ORDER BY bucket`,
		key, nanos(since))
	list, err := collect(rows, err, func(row scanner) (b store.QuotaBucket, err error) {
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

// MarkQuotaEvent implements store.Counters. The first insert of a key and
// window wins; a racing one waits for it and then inserts nothing.
func (s *Store) MarkQuotaEvent(ctx context.Context, key string, window, expires time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO quota_events (key, window_start, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key, window_start) DO NOTHING`, key, nanos(window), nanos(expires))
	if err != nil {
		return false, fmt.Errorf("marking event %s: %w", key, mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}

// PruneQuota implements store.Counters.
func (s *Store) PruneQuota(ctx context.Context, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM quota_counters WHERE expires_at <= $1`, nanos(now)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM quota_events WHERE expires_at <= $1`, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("pruning quota counters: %w", err)
	}
	return nil
}
