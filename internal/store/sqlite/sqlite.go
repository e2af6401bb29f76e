// Package sqlite is the embedded store: one SQLite database (pure Go, WAL
// mode, synchronous=FULL) in the data directory. It serves one node: a lock
// file keeps a second process off the same data directory.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"hve/internal/store"
)

func init() {
	// hve_fold(text) lowers text as Go's strings.ToLower does, for
	// case-insensitive searches beyond ASCII (SQLite's lower() and LIKE
	// fold only A-Z). Registered once, for every connection.
	sqlite.MustRegisterDeterministicScalarFunction("hve_fold", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return strings.ToLower(v), nil
		case []byte:
			return strings.ToLower(string(v)), nil
		case nil:
			return nil, nil
		}
		return args[0], nil
	})
}

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite implementation of store.Store.
type Store struct {
	// w is the only connection that writes. SQLite allows one writer at a
	// time; funnelling writes through one connection queues them in Go
	// instead of spinning on SQLITE_BUSY.
	w *sql.DB
	// c runs the write transactions (tx) on w, merging those that wait
	// together into one commit, and makes them durable through wal.
	c   *committer
	wal *walSyncer
	// ck copies the WAL into the database file, apart from the writer.
	ck *checkpointer
	// dirVersion counts committed directory changes (dirTx).
	dirVersion atomic.Uint64
	// r serves reads concurrently (WAL readers never block the writer).
	r    *sql.DB
	lock *os.File

	// Statements on the SMTP hot path (every RCPT), parsed once per read
	// connection instead of once per call.
	lookupStmt, domainStmt *sql.Stmt
	// q holds the statements of the spool and delivery path (every
	// message), prepared once as well.
	q queueStmts
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database hve.db in dir and applies
// pending migrations.
func Open(ctx context.Context, dir string) (*Store, error) {
	if discardSpool {
		slog.Warn("this hve was built with hve_discard_spool for the benchmark suite: accepted messages and their trace are NOT stored")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "hve.db")
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	// The writer commits with synchronous(NORMAL): the committer's syncer
	// fsyncs the WAL after each commit and answers only then, so that a
	// committed transaction survives power loss, which the 250 reply
	// promises. It never checkpoints: the checkpointer does, apart.
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=wal_autocheckpoint(0)&_txlock=immediate")
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, wal: newWALSyncer(path + "-wal"), lock: lock}
	s.c = newCommitter(w, s.wal)
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("opening %s for reading: %w", path, err)
	}
	if s.ck, err = newCheckpointer(path, pragmas); err != nil {
		s.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(8)
	// Keep them all: opening a SQLite connection costs more than a lookup.
	s.r.SetMaxIdleConns(8)
	if s.lookupStmt, err = s.r.PrepareContext(ctx, lookupSQL); err != nil {
		s.Close()
		return nil, fmt.Errorf("preparing address lookup: %w", err)
	}
	if s.domainStmt, err = s.r.PrepareContext(ctx, domainSQL); err != nil {
		s.Close()
		return nil, fmt.Errorf("preparing domain lookup: %w", err)
	}
	if err := s.q.prepare(ctx, s.w, s.r); err != nil {
		s.Close()
		return nil, err
	}
	// One node owns this database (the lock above), so no other live
	// process holds a lease: leases of a crashed run are released at once
	// instead of waiting for them to expire.
	if _, err := s.exec(ctx, `UPDATE messages SET lease_owner = '', lease_until = 0 WHERE state = 'queued' AND lease_owner != ''`); err != nil {
		s.Close()
		return nil, fmt.Errorf("releasing leases of an earlier run: %w", err)
	}
	// The same holds for report jobs: one cut short runs again at once.
	if _, err := s.exec(ctx, `UPDATE report_jobs SET lease_until = 0 WHERE state = 'running'`); err != nil {
		s.Close()
		return nil, fmt.Errorf("releasing report jobs of an earlier run: %w", err)
	}
	return s, nil
}

// lockDir takes an exclusive lock on dir/lock, held until Close. Two
// processes writing one SQLite spool would each release the other's leases.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another hve process: %w", dir, err)
	}
	return f, nil
}

// Close closes the database and releases the data directory.
func (s *Store) Close() error {
	// The writes under way end first (and are synced): they use the
	// statements closed below.
	if s.c != nil {
		s.c.close()
	}
	errs := []error{s.q.close()}
	for _, st := range []*sql.Stmt{s.lookupStmt, s.domainStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.ck != nil {
		errs = append(errs, s.ck.close())
	}
	if s.wal != nil {
		errs = append(errs, s.wal.close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("listing migrations: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		var n int
		if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("checking migration %s: %w", version, err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("reading migration %s: %w", version, err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("applying migration %s: %w", version, err)
		}
	}
	return nil
}

// dirTx is tx for changes of the directory (directory.go, access.go,
// routes.go): once committed, it moves the directory version, so that
// caches of directory reads start over.
func (s *Store) dirTx(ctx context.Context, fn func(*sql.Tx) error) error {
	defer s.dirVersion.Add(1)
	return s.tx(ctx, fn)
}

// dirExec is exec for changes of the directory (see dirTx).
func (s *Store) dirExec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer s.dirVersion.Add(1)
	return s.exec(ctx, query, args...)
}

// DirectoryVersion counts the directory changes of this store (it is the
// only writer of its database): see store.DirectoryVersion.
func (s *Store) DirectoryVersion() uint64 { return s.dirVersion.Load() }

// exec runs one write statement in a transaction of its own (see tx).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// tx runs fn in a write transaction and commits it, mapping SQLite errors to
// the store's error values. The transaction may share its commit with
// others that wait at the same time (see committer); fn must not call tx.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.c.tx(ctx, fn)
}

// mapErr turns SQLite's constraint and disk-full errors into store errors
// callers can test for, keeping the original text.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %v", store.ErrExists, err)
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%w: %v", store.ErrFull, err)
		}
	}
	return err
}

// nanos stores a time as Unix nanoseconds; the zero time (an optional time
// not set) is 0, which fromNanos turns back into the zero time. UnixNano of
// the zero time itself is undefined.
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

// jsonList encodes a list for a JSON column. A nil list is stored as [], so
// that it reads back as an empty list, which the admin API shows as [].
func jsonList[T ~string](list []T) string {
	if list == nil {
		return "[]"
	}
	b, _ := json.Marshal(list) // lists of strings always encode
	return string(b)
}

// fromJSONList decodes a JSON column written by jsonList into a non-nil list.
func fromJSONList[T ~string](col string, list *[]T) error {
	if err := json.Unmarshal([]byte(col), list); err != nil {
		return fmt.Errorf("decoding %q: %w", col, err)
	}
	if *list == nil {
		*list = []T{}
	}
	return nil
}
