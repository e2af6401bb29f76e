// Package postgres is the store for several nodes: every node of a
// deployment opens the same PostgreSQL database, which holds everything a
// node needs, message bodies included, so that any node can deliver what
// another accepted and no shared filesystem is required.
//
// Work is shared by leases: delivery, report jobs and webhook senders claim
// rows with FOR UPDATE SKIP LOCKED and a lease time, so a node that dies
// loses nothing; another node takes its work once the lease has passed.
// Read-modify-write steps that SQLite's single writer made safe are either
// single statements, take row locks, or run serializable (see serializable).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"hve/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL implementation of store.Store. Its methods are
// safe for concurrent use, from any number of nodes.
type Store struct {
	pool *pgxpool.Pool
	// dirVersion counts directory changes: this node's own (dirTx) and
	// those other nodes announce (ListenRevocations hears them).
	dirVersion atomic.Uint64
}

var _ store.Store = (*Store)(nil)

// lockMigrate is the advisory lock (pg_advisory_xact_lock) that serializes
// schema migrations of nodes starting at once. It is an arbitrary number,
// fixed so that every node agrees, and below the trace's pending marks
// (tracePendingKey).
const lockMigrate int64 = 0x6876650001

// Open connects to the database dsn names (a postgres:// URL or a
// key=value string, as libpq takes) and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: parsing the PostgreSQL address: %w", err)
	}
	// A node's SMTP sessions, delivery workers and admin requests share the
	// pool; 4 connections per core of a small node is plenty for a
	// database that does most of its work in group commits.
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	// The node's statements are short and indexed: compiling one with JIT
	// costs more than running it. A statement whose estimated cost is high
	// (estimates run high in a table that grew since it was last analyzed)
	// would otherwise spend a fifth of a second compiling on every run.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connecting to PostgreSQL at %s: %w", redact(cfg.ConnConfig), err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// redact names the server of a connection without its password.
func redact(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s (user %s)", c.Host, c.Port, c.Database, c.User)
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool is the connection pool, for the node-to-node notifications of
// package server (LISTEN/NOTIFY) and for tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// migrate applies the embedded migrations not yet applied, under an
// advisory lock so that nodes starting together apply each one once.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("listing migrations: %w", err)
	}
	sort.Strings(names)
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return fmt.Errorf("locking the schema for migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at bigint NOT NULL)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		for _, name := range names {
			version := strings.TrimSuffix(path.Base(name), ".sql")
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return fmt.Errorf("checking migration %s: %w", version, err)
			}
			if n > 0 {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("reading migration %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("applying migration %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("recording migration %s: %w", version, err)
			}
		}
		return nil
	})
}

// customPlans makes PostgreSQL plan the rest of the transaction's
// statements for their arguments, each time they run. A statement that
// reads a table that grows fast (the queue, the trace) by an array of keys
// or a range needs it: after five runs PostgreSQL may keep one generic plan
// for a prepared statement, made for the table's size then, and a plan
// made while the queue was nearly empty (a new database) scans the whole
// table; it is made again only when the table is next analyzed, which a
// busy new database, or one without autovacuum, may not do for a long time.
const customPlans = `SELECT set_config('plan_cache_mode', 'force_custom_plan', true)`

// batch sends b's statements in one round trip, as one transaction:
// PostgreSQL runs the statements of a pipeline up to its Sync in an
// implicit transaction, committed after the last and rolled back whole on
// the first error. It needs no BEGIN and COMMIT round trips, and a lock
// taken in it (a trace writer's pending mark) is held for no network wait.
func (s *Store) batch(ctx context.Context, b *pgx.Batch) error {
	return mapErr(s.pool.SendBatch(ctx, b).Close())
}

// tx runs fn in a read-committed transaction and commits it, mapping
// PostgreSQL errors to the store's error values.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return mapErr(pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, fn))
}

// dirTx is tx for changes of the directory (directory.go, access.go,
// routes.go): see dirChanged.
func (s *Store) dirTx(ctx context.Context, fn func(pgx.Tx) error) error {
	defer s.dirChanged()
	return s.tx(ctx, fn)
}

// dirExecOne is execOne on the pool for changes of the directory.
func (s *Store) dirExecOne(ctx context.Context, what, query string, args ...any) error {
	defer s.dirChanged()
	return execOne(ctx, s.pool, what, query, args...)
}

// dirSerializable is serializable for changes of the directory.
func (s *Store) dirSerializable(ctx context.Context, fn func(pgx.Tx) error) error {
	defer s.dirChanged()
	return s.serializable(ctx, fn)
}

// dirChanged follows every change of the directory this node makes,
// committed or not (an extra one costs a cache refill): it moves this
// node's directory version at once. The other nodes hear of the change from
// the tables' triggers (NOTIFY hve_directory, migration 0003), and so does
// this node's listener, moments later.
func (s *Store) dirChanged() { s.dirVersion.Add(1) }

// DirectoryVersion counts the directory changes this node made or heard
// of: see store.DirectoryVersion. Those of other nodes arrive through
// ListenRevocations, within moments while its connection works.
func (s *Store) DirectoryVersion() uint64 { return s.dirVersion.Load() }

// serializable runs fn in a serializable transaction, running it again
// when PostgreSQL aborts it for a conflict with a concurrent transaction
// (serialization failure or deadlock). fn must therefore be safe to run
// more than once: it should only read and write through tx. Use it for
// read-check-write steps where a row lock would not do (a count checked
// against a limit, say).
func (s *Store) serializable(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, fn)
		if err == nil || !retryable(err) || attempt >= 20 || ctx.Err() != nil {
			return mapErr(err)
		}
		// A short, growing pause lets the winner commit.
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
}

// retryable reports a conflict that running the transaction again resolves.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// mapErr turns PostgreSQL's errors into store errors callers can test for,
// keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %v", store.ErrExists, err)
		case "53100": // disk_full
			return fmt.Errorf("%w: %v", store.ErrFull, err)
		}
	}
	return err
}

// nanos stores a time as Unix nanoseconds; the zero time (an optional time
// not set) is 0, which fromNanos turns back into the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// jsonList encodes a list for a jsonb column; a nil list is stored as [],
// so that it reads back as an empty list.
func jsonList[T ~string](list []T) string {
	if list == nil {
		return "[]"
	}
	b, _ := json.Marshal(list) // lists of strings always encode
	return string(b)
}

// fromJSONList decodes a jsonb column written by jsonList into a non-nil
// list.
func fromJSONList[T ~string](col []byte, list *[]T) error {
	if err := json.Unmarshal(col, list); err != nil {
		return fmt.Errorf("decoding %q: %w", col, err)
	}
	if *list == nil {
		*list = []T{}
	}
	return nil
}

// one returns the single element of a query's result, or ErrNotFound
// naming what.
func one[T any](list []T, err error) func(what string) (T, error) {
	return func(what string) (T, error) {
		var zero T
		if err != nil {
			return zero, fmt.Errorf("%s: %w", what, err)
		}
		if len(list) == 0 {
			return zero, fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		return list[0], nil
	}
}

// scanner is what pgx.Row and pgx.Rows have in common.
type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan and closes rows. The list is never
// nil, so that an empty result encodes as [].
func collect[T any](rows pgx.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	list := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, mapErr(rows.Err())
}

// querier is what a pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// execOne runs a statement that must touch exactly one row, or ErrNotFound
// naming what.
func execOne(ctx context.Context, q querier, what, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
