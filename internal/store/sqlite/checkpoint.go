package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Checkpoints copy the pages of the write-ahead log into the database file,
// so that the log can start over. SQLite makes one within a commit once
// the log holds 1,000 pages; the store's writer never does (its commits
// would wait for it), and the checkpointer makes them on a connection of
// its own instead, while the writer goes on.
//
// The log file's size is no measure of what the log holds: once a
// checkpoint has copied everything, the writer starts again at the file's
// beginning and the file keeps its size. So the size only tells when there
// cannot be enough to copy yet; otherwise the checkpointer runs a passive
// checkpoint and goes by what SQLite answers: the pages in the log and
// those it copied.
const (
	// checkpointEvery is how often the checkpointer looks at the log.
	checkpointEvery = 100 * time.Millisecond
	// checkpointPages is the log size (in pages of 4 KiB) from which it
	// checkpoints what it can without waiting for anyone (PASSIVE).
	checkpointPages = 1000
	// restartPages is how many pages a passive checkpoint may have left
	// behind (readers still on older pages) before the checkpointer also
	// waits for readers and the writer to start the log over (RESTART),
	// should passive checkpoints never catch up under constant load. That
	// wait holds up the writer, so it is the exception.
	restartPages = 4096
)

type checkpointer struct {
	// passives and restarts count the checkpoints made (for tests).
	passives, restarts atomic.Int64
	db                 *sql.DB
	walPath            string
	stop               chan struct{}
	done               chan struct{}
}

// newCheckpointer starts checkpointing the database at path.
func newCheckpointer(path, pragmas string) (*checkpointer, error) {
	// synchronous(NORMAL): a checkpoint syncs the log before it copies it
	// and the database file after.
	db, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("opening %s for checkpoints: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, walPath: path + "-wal", stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		fi, err := os.Stat(c.walPath)
		if err != nil || fi.Size() < checkpointPages*4096 {
			continue
		}
		// Errors (SQLITE_BUSY above all) only mean it is tried again at
		// the next tick.
		var busy, logPages, copied int64
		err = c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &copied)
		if err != nil {
			continue
		}
		c.passives.Add(1)
		if logPages-copied > restartPages {
			c.restarts.Add(1)
			c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(RESTART)")
		}
	}
}

// close stops checkpointing and closes the connection. A second call
// does nothing.
func (c *checkpointer) close() error {
	select {
	case <-c.stop:
		return nil
	default:
		close(c.stop)
	}
	<-c.done
	return c.db.Close()
}
