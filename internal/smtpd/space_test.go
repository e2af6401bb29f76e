package smtpd_test

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"hve/internal/queue"
	"hve/internal/smtpd"
)

// TestStorageLow: below the free space minimum, MAIL and DATA are refused
// with 452 4.3.1 and a plain reason, nothing is queued, and mail is
// accepted again once there is room. The free space comes from an
// injected function behind a real queue.SpaceGuard.
func TestStorageLow(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 30)
	guard := queue.NewSpaceGuard("/data", queue.SpaceThreshold{Bytes: 1 << 30}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	guard.Free = func(string) (uint64, uint64, error) { return free.Load(), 100 << 30, nil }
	guard.TTL = 0 // every transaction looks
	f := newFixtureWith(t, smtpd.Config{StorageLow: guard.Low}, nil)
	c := f.dial()
	c.signIn()

	free.Store(512 << 20)
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(452, "4.3.1", "Insufficient system storage", "free disk space", "below its configured minimum")
	if evs, depth := f.stored(); len(evs) != 0 || depth != 0 {
		t.Errorf("after a refusal for low disk space: %d trace events, queue depth %d; want nothing", len(evs), depth)
	}

	// The disk fills between MAIL and DATA.
	free.Store(10 << 30)
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	free.Store(1 << 20)
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: %s\r\nSubject: late\r\n\r\nbody\r\n", appAddr)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.want(c.read())(452, "4.3.1", "Insufficient system storage")

	// ... or while the message is being sent.
	free.Store(10 << 30)
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	c.want(c.cmd("DATA"))(354, "")
	free.Store(1 << 20)
	w = c.tp.DotWriter()
	fmt.Fprintf(w, "From: %s\r\nSubject: late\r\n\r\nbody\r\n", appAddr)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.want(c.read())(452, "4.3.1", "Insufficient system storage")
	if n := f.writer.count(); n != 0 {
		t.Errorf("the spool was written %d times while the disk was low", n)
	}

	// Room again: the client's retry on the same session is accepted.
	free.Store(2 << 30)
	c.want(c.send("retry"))(250, "2.0.0", "OK <")
	if _, depth := f.stored(); depth != 1 {
		t.Errorf("queue depth after the retry = %d, want 1", depth)
	}
}
