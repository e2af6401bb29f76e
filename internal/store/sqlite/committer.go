package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// errClosed is what a write gets after Close.
var errClosed = errors.New("sqlite store is closed")

// maxMerged bounds the write transactions merged into one commit, so that
// none waits long behind the others.
const maxMerged = 32

// committer runs the store's write transactions on its one writing
// connection. Those that wait at the same time are merged into one SQLite
// transaction, each in a savepoint of its own, and share its commit: one
// WAL write and one fsync for the spool's batch of messages, the delivery
// worker's outcomes, the usage meter's counters and whatever else is
// writing (group commit across callers). A transaction alone is run as
// it is, without a savepoint.
//
// The fsync is not the writer's: the writing connection commits with
// synchronous=NORMAL (SQLite then writes the WAL without syncing it, and
// stays safe from corruption), and a second goroutine, the syncer, fsyncs
// the WAL file after each commit and only then answers the callers. The
// writer meanwhile runs the next transaction, so that the time of a sync
// overlaps the work of the next commit instead of adding to it; commits
// that end while a sync runs share the next one. Nobody hears of a commit
// before it is durable.
//
// Each caller still gets its own outcome: a transaction that fails is
// rolled back to its savepoint and the others commit. Where SQLite itself
// ends the whole transaction (an interrupted statement, a full disk), the
// failing caller gets its error and the others are run again in a new
// transaction: their work was never committed, so nothing is done twice.
type committer struct {
	db  *sql.DB
	wal syncer
	// commits counts the transactions committed (for tests and metrics).
	commits atomic.Int64
	ops     chan *txOp
	stop    chan struct{}
	done    chan struct{}

	// unsynced are the committed transactions waiting for syncLoop, which
	// is woken through syncWake; guarded by mu.
	mu       sync.Mutex
	unsynced []*txOp
	syncWake chan struct{}
	syncDone chan struct{}
}

// txOp is one caller's write transaction.
type txOp struct {
	ctx    context.Context
	fn     func(*sql.Tx) error
	result chan txResult
}

type txResult struct {
	err error
	// panicked is a panic of fn, raised again in the caller's goroutine.
	panicked any
}

// syncer makes what was committed durable (walSyncer: an fsync of the
// WAL).
type syncer interface{ sync() error }

// newCommitter starts a committer writing through db, whose commits are
// made durable by wal.
func newCommitter(db *sql.DB, wal syncer) *committer {
	c := &committer{db: db, wal: wal, ops: make(chan *txOp), stop: make(chan struct{}), done: make(chan struct{}),
		syncWake: make(chan struct{}, 1), syncDone: make(chan struct{})}
	go c.run()
	go c.syncLoop()
	return c
}

// tx runs fn in a write transaction and returns once it is committed (or
// failed). Once handed over, the transaction runs even if ctx ends while
// it waits for the commit it shares with others.
func (c *committer) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	op := &txOp{ctx: ctx, fn: fn, result: make(chan txResult, 1)}
	select {
	case c.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stop:
		return errClosed
	}
	r := <-op.result
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// close stops the committer once the transaction under way is done and
// synced.
func (c *committer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
	<-c.syncDone
}

func (c *committer) run() {
	// The syncer ends once it has synced the last commit.
	defer c.signalSync()
	defer close(c.done)
	for {
		var first *txOp
		select {
		case first = <-c.ops:
		case <-c.stop:
			return
		}
		batch := []*txOp{first}
	gather:
		for len(batch) < maxMerged {
			select {
			case op := <-c.ops:
				batch = append(batch, op)
			default:
				break gather
			}
		}
		for len(batch) > 0 {
			batch = c.attempt(batch)
		}
	}
}

// attempt runs batch in one transaction and commits it, answering every
// caller, except those whose work was lost when SQLite ended the whole
// transaction because of another's failure: it returns those, to be run
// again. Each attempt answers at least one caller, so retries end.
func (c *committer) attempt(batch []*txOp) (again []*txOp) {
	tx, err := c.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, op := range batch {
			op.answer(txResult{err: mapErr(err)})
		}
		return nil
	}
	alone := len(batch) == 1
	var ran []*txOp // their work is in tx, waiting for the commit
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.answer(txResult{err: err})
			continue
		}
		if alone {
			if r := call(op.fn, tx); r.failed() {
				tx.Rollback()
				op.answer(r)
				return nil
			}
			ran = append(ran, op)
			continue
		}
		if _, err := tx.Exec(`SAVEPOINT op`); err != nil {
			tx.Rollback()
			op.answer(txResult{err: fmt.Errorf("starting a savepoint: %w", mapErr(err))})
			return append(ran, batch[i+1:]...)
		}
		r := call(op.fn, tx)
		if !r.failed() {
			if _, err := tx.Exec(`RELEASE op`); err != nil {
				tx.Rollback()
				op.answer(txResult{err: fmt.Errorf("releasing a savepoint: %w", mapErr(err))})
				return append(ran, batch[i+1:]...)
			}
			ran = append(ran, op)
			continue
		}
		_, err := tx.Exec(`ROLLBACK TO op`)
		if err == nil {
			_, err = tx.Exec(`RELEASE op`)
		}
		op.answer(r)
		if err != nil {
			// SQLite rolled the whole transaction back with this failure.
			tx.Rollback()
			return append(ran, batch[i+1:]...)
		}
	}
	if err := mapErr(tx.Commit()); err != nil {
		for _, op := range ran {
			op.answer(txResult{err: err})
		}
		return nil
	}
	c.commits.Add(1)
	c.mu.Lock()
	c.unsynced = append(c.unsynced, ran...)
	c.mu.Unlock()
	c.signalSync()
	return nil
}

func (c *committer) signalSync() {
	select {
	case c.syncWake <- struct{}{}:
	default:
	}
}

// syncLoop fsyncs the WAL for every commit and answers its callers: all
// the commits made since the last sync share the next one.
func (c *committer) syncLoop() {
	defer close(c.syncDone)
	for {
		<-c.syncWake
		c.mu.Lock()
		ops := c.unsynced
		c.unsynced = nil
		c.mu.Unlock()
		if len(ops) > 0 {
			err := c.wal.sync()
			if err != nil {
				err = fmt.Errorf("syncing the write-ahead log: %w", err)
			}
			for _, op := range ops {
				op.answer(txResult{err: err})
			}
		}
		select {
		case <-c.done:
			c.mu.Lock()
			left := len(c.unsynced)
			c.mu.Unlock()
			if left == 0 {
				return
			}
			c.signalSync()
		default:
		}
	}
}

// call runs fn, turning its error or panic into a result.
func call(fn func(*sql.Tx) error, tx *sql.Tx) (r txResult) {
	defer func() {
		if p := recover(); p != nil {
			r = txResult{panicked: p}
		}
	}()
	if err := fn(tx); err != nil {
		return txResult{err: mapErr(err)}
	}
	return txResult{}
}

func (r txResult) failed() bool { return r.err != nil || r.panicked != nil }

func (op *txOp) answer(r txResult) { op.result <- r }

// walSyncer fsyncs SQLite's write-ahead log file. It opens the file by its
// name and checks before every sync that the name still is the same file
// (SQLite could remove and make it again when every connection closes,
// which the store's connections never all do), so that a sync never goes
// to a file SQLite no longer writes.
type walSyncer struct {
	path string
	f    *os.File
}

func newWALSyncer(path string) *walSyncer { return &walSyncer{path: path} }

func (w *walSyncer) sync() error {
	cur, err := os.Stat(w.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing was written to a log yet
	}
	if err != nil {
		return err
	}
	if w.f != nil {
		if open, err := w.f.Stat(); err != nil || !os.SameFile(open, cur) {
			w.f.Close()
			w.f = nil
		}
	}
	if w.f == nil {
		if w.f, err = os.OpenFile(w.path, os.O_RDWR, 0); err != nil {
			return err
		}
	}
	return datasync(w.f)
}

func (w *walSyncer) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
