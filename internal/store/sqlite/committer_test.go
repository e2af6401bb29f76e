package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/store"
)

// committerDB opens a database with one table t(v) and a committer on it
// that syncs through sync.
func committerDB(t *testing.T, sync syncer) (*committer, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (v TEXT NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	if sync == nil {
		sync = newWALSyncer(path + "-wal")
	}
	c := newCommitter(db, sync)
	t.Cleanup(func() {
		c.close()
		db.Close()
	})
	return c, db
}

func insert(v string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO t (v) VALUES (?)`, v)
		return err
	}
}

func rows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	r, err := db.Query(`SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var v string
		r.Scan(&v)
		out = append(out, v)
	}
	return out
}

// blocked runs a transaction that holds the committer until release is
// closed, so that the callers behind it pile up; it returns once the
// committer is inside it.
func blocked(t *testing.T, c *committer, release chan struct{}) <-chan error {
	t.Helper()
	inside := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.tx(context.Background(), func(tx *sql.Tx) error {
			close(inside)
			<-release
			return insert("first")(tx)
		})
	}()
	<-inside
	return done
}

// pileUp starts a transaction for each of fns behind a blocked committer,
// each from its own goroutine, and gives them the time to wait there.
func pileUp(t *testing.T, c *committer, fns []func(*sql.Tx) error) []chan error {
	t.Helper()
	var results []chan error
	for _, fn := range fns {
		res := make(chan error, 1)
		go func() { res <- c.tx(context.Background(), fn) }()
		results = append(results, res)
	}
	// The callers are handed over one by one as the committer gathers;
	// until it does they wait in their send. Give them the time to get
	// there, even on a loaded machine.
	time.Sleep(300 * time.Millisecond)
	return results
}

func TestWaitingTransactionsShareOneCommit(t *testing.T) {
	c, db := committerDB(t, nil)
	release := make(chan struct{})
	first := blocked(t, c, release)
	results := pileUp(t, c, []func(*sql.Tx) error{insert("a"), insert("b"), insert("c")})
	before := c.commits.Load()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if err := <-r; err != nil {
			t.Errorf("tx = %v", err)
		}
	}
	if got := c.commits.Load() - before; got != 2 {
		t.Errorf("%d commits for the blocking transaction and the three behind it, want 2 (the three share one)", got)
	}
	if got := strings.Join(rows(t, db), ","); got != "a,b,c,first" {
		t.Errorf("rows = %s", got)
	}
}

func TestAFailingTransactionLeavesTheOthersOfItsCommit(t *testing.T) {
	c, db := committerDB(t, nil)
	release := make(chan struct{})
	first := blocked(t, c, release)
	boom := errors.New("boom")
	results := pileUp(t, c, []func(*sql.Tx) error{
		insert("a"),
		func(tx *sql.Tx) error {
			if err := insert("half-done")(tx); err != nil {
				return err
			}
			return boom
		},
		insert("first"), // taken by the blocking transaction: rolled back to its savepoint
		insert("c"),
	})
	close(release)
	<-first
	ok := func(err error) bool { return err == nil }
	isBoom := func(err error) bool { return errors.Is(err, boom) }
	taken := func(err error) bool { return errors.Is(err, store.ErrExists) }
	for i, want := range []func(error) bool{ok, isBoom, taken, ok} {
		if err := <-results[i]; !want(err) {
			t.Errorf("transaction %d = %v", i, err)
		}
	}
	if got := strings.Join(rows(t, db), ","); got != "a,c,first" {
		t.Errorf("rows = %s, want a,c,first: the failed transactions' writes are undone, the others kept", got)
	}
}

func TestTransactionsLostWithAnotherAreRunAgain(t *testing.T) {
	c, db := committerDB(t, nil)
	var ranA atomic.Int64
	killer := errors.New("ended the whole transaction")
	op := func(fn func(*sql.Tx) error) *txOp {
		return &txOp{ctx: context.Background(), fn: fn, result: make(chan txResult, 1)}
	}
	a := op(func(tx *sql.Tx) error { ranA.Add(1); return insert("a")(tx) })
	k := op(func(tx *sql.Tx) error {
		// As SQLite does on an interrupted statement or a full disk.
		if _, err := tx.Exec(`ROLLBACK`); err != nil {
			return err
		}
		return killer
	})
	z := op(insert("c"))
	// One attempt of the three, in this order, as the committer's loop
	// makes it (which waits, idle, for callers that never come).
	again := c.attempt([]*txOp{a, k, z})
	if len(again) != 2 || again[0] != a || again[1] != z {
		t.Fatalf("attempt returned %d transactions to run again, want a and c", len(again))
	}
	if r := <-k.result; !errors.Is(r.err, killer) {
		t.Fatalf("the killer got %v, want its error", r.err)
	}
	if again = c.attempt(again); len(again) != 0 {
		t.Fatalf("the second attempt returned %d to run again", len(again))
	}
	for name, o := range map[string]*txOp{"a": a, "c": z} {
		if r := <-o.result; r.err != nil {
			t.Errorf("%s = %v", name, r.err)
		}
	}
	if got := strings.Join(rows(t, db), ","); got != "a,c" {
		t.Errorf("rows = %s, want a,c: the transactions lost with the killer's were run again", got)
	}
	if ranA.Load() != 2 {
		t.Errorf("a ran %d times, want 2 (its first run was rolled back with the killer)", ranA.Load())
	}
}

func TestAPanicReachesItsCaller(t *testing.T) {
	c, db := committerDB(t, nil)
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the transaction's panic", p)
			}
		}()
		c.tx(context.Background(), func(tx *sql.Tx) error {
			insert("lost")(tx)
			panic("boom")
		})
		t.Error("tx returned after its transaction panicked")
	}()
	if err := c.tx(context.Background(), insert("after")); err != nil {
		t.Fatalf("the next transaction = %v", err)
	}
	if got := strings.Join(rows(t, db), ","); got != "after" {
		t.Errorf("rows = %s, want only the next transaction's", got)
	}
}

func TestACancelledCallerIsNotRun(t *testing.T) {
	c, db := committerDB(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.tx(ctx, insert("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("tx with a cancelled context = %v, want context.Canceled", err)
	}
	if got := rows(t, db); len(got) != 0 {
		t.Errorf("rows = %v, want none", got)
	}
}

// gate is a syncer that waits for its test.
type gate struct {
	mu      sync.Mutex
	entered chan struct{}
	release chan struct{}
	syncs   int
}

func (g *gate) sync() error {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	g.syncs++
	g.mu.Unlock()
	return nil
}

func TestNoAnswerBeforeTheSync(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 10), release: make(chan struct{})}
	c, db := committerDB(t, g)
	done := make(chan error, 1)
	go func() { done <- c.tx(context.Background(), insert("x")) }()
	<-g.entered // committed, now syncing
	select {
	case err := <-done:
		t.Fatalf("tx returned (%v) while its commit was being synced", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Meanwhile the writer goes on: the next transaction commits while the
	// first sync runs, and waits for a sync of its own.
	second := make(chan error, 1)
	go func() { second <- c.tx(context.Background(), insert("y")) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.commits.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second transaction did not commit while the first sync ran")
		}
		time.Sleep(time.Millisecond)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows(t, db), ","); got != "x,y" {
		t.Errorf("rows = %s", got)
	}
}
