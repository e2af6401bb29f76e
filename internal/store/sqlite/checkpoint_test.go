package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Once the log file has grown past the restart size, it keeps that size
// (SQLite writes from its start again after a checkpoint); the checkpointer
// must then go by what the log holds, making passive checkpoints and no
// restart, which would hold up the writer every time.
func TestCheckpointsGoByTheLogNotTheFileSize(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.exec(ctx, `CREATE TABLE scratch (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	// One transaction of 20 MiB: the log file grows past the restart
	// size before any checkpoint can copy it.
	blob := make([]byte, 64<<10)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for range 320 {
			if _, err := tx.Exec(`INSERT INTO scratch (b) VALUES (?)`, blob); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wal := filepath.Join(dir, "hve.db-wal")
	if fi, err := os.Stat(wal); err != nil || fi.Size() <= restartPages*4096 {
		t.Fatalf("log file: %v, %v; want it past %d bytes", fi.Size(), err, restartPages*4096)
	}
	waitFor(t, func() bool { return s.ck.passives.Load() > 0 })

	// Small writes from then on: the file keeps its size, the log holds
	// little.
	before := s.ck.passives.Load()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.exec(ctx, `INSERT INTO scratch (b) VALUES (x'00')`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if fi, err := os.Stat(wal); err != nil || fi.Size() <= restartPages*4096 {
		t.Fatalf("log file: %v, %v; the test wants it to stay large", fi.Size(), err)
	}
	if n := s.ck.restarts.Load(); n != 0 {
		t.Errorf("%d restart checkpoints after the log was copied; want none", n)
	}
	if s.ck.passives.Load() == before {
		t.Error("no passive checkpoint while the log file was large")
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}
