package delivery_test

// A next hop down for a whole simulated day: the queue stays on disk, the
// worker's memory stays flat, and once the next hop is back every
// recipient is delivered exactly once.

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
)

// outageStep is how far the clock moves between delivery passes.
// outageMessages and outageBodySize are in race_on_test.go and
// race_off_test.go.
const outageStep = 30 * time.Minute

// unusedAddr returns a loopback address nothing listens on, for a next hop
// that is down. Its port is below the ephemeral range, so that it stays
// free until a sink binds it later in the test: the system never picks it
// for other sockets.
func unusedAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

// heapAfterGC returns the live heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// dirSize sums the sizes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// drain runs delivery passes until nothing is due at the clock's time.
func drain(t *testing.T, f *fixture) int {
	t.Helper()
	total := 0
	for {
		n, err := f.w.RunOnce(context.Background())
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func TestNextHopDownForADay(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a day of retries over thousands of messages")
	}
	f, clk := newRelayFixture(t)
	// The next hop: a port that refuses connections until the sink comes
	// back on it.
	hop := unusedAddr(t)
	f.route(directory.Route{Domain: relayDomain, Type: directory.RouteSMTP, Target: hop, TLS: directory.TLSNone})

	// Queue the messages in batches, as the spool would.
	start := clk.Now()
	pad := strings.Repeat("x", outageBodySize)
	rcpts := make([]string, outageMessages)
	var batch []*queue.Message
	var first string
	for i := range outageMessages {
		rcpts[i] = fmt.Sprintf("r%04d@%s", i, relayDomain)
		body := []byte(fmt.Sprintf("From: %s\r\nSubject: outage %d\r\n\r\n%s\r\n", sender, i, pad))
		batch = append(batch, &queue.Message{QueueID: queue.NewID(start), TenantID: f.tenant.ID, AccountID: f.account.ID, Sender: sender,
			Recipients: []string{rcpts[i]}, MessageID: fmt.Sprintf("<outage.%d@client.test>", i), Subject: fmt.Sprintf("outage %d", i),
			ClientIP: "192.0.2.7", Size: int64(len(body)), ReceivedAt: start, Body: body})
		if i == 0 {
			first = batch[0].QueueID
		}
		if len(batch) == 500 || i == outageMessages-1 {
			if err := f.st.Enqueue(context.Background(), batch, nil); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if n := f.queueDepth(); n != outageMessages {
		t.Fatalf("queue depth %d, want %d", n, outageMessages)
	}

	// Warm up: the first two hours of retries.
	var heapWarm uint64
	var peak uint64
	attempts := 0
	for clk.Now().Sub(start) < 24*time.Hour {
		attempts += drain(t, f)
		if clk.Now().Sub(start) == 2*time.Hour {
			heapWarm = heapAfterGC()
		}
		if heapWarm > 0 {
			peak = max(peak, heapAfterGC())
		}
		clk.advance(outageStep)
	}
	heapEnd := heapAfterGC()
	if n := f.queueDepth(); n != outageMessages {
		t.Fatalf("after a day with the next hop down: queue depth %d, want all %d messages", n, outageMessages)
	}
	if attempts < 10*outageMessages {
		t.Errorf("%d message attempts in the day, want the retry schedule's (at least 10 per message)", attempts)
	}
	// The queue is on disk: its bodies alone are 40 MB.
	if size := dirSize(t, f.dataDir); size < outageMessages*outageBodySize {
		t.Errorf("the data directory holds %d bytes, less than the queued mail (%d)", size, outageMessages*outageBodySize)
	}
	// ... and not in memory: the heap after a day is about what it was
	// after two hours, far below the 40 MB of queued mail.
	const slack = 16 << 20
	t.Logf("heap: %d KiB after warm-up, %d KiB peak, %d KiB after 24 h; %d attempts", heapWarm>>10, peak>>10, heapEnd>>10, attempts)
	if heapEnd > heapWarm+slack || peak > heapWarm+slack {
		t.Errorf("heap grew from %d KiB after warm-up to %d KiB (peak %d KiB) over the day: the queue is held in memory",
			heapWarm>>10, heapEnd>>10, peak>>10)
	}
	st := f.states(&queue.Message{QueueID: first})
	for _, r := range st {
		if r.State != queue.RecipientDeferred || !strings.Contains(r.LastReply, "cannot connect") {
			t.Errorf("a recipient after the day: %+v; want deferred, with the connection failure", r)
		}
	}

	// The next hop comes back on the same address; within one schedule
	// step (4 hours) every recipient is due and delivered.
	s := startSink(t, sinkOptions{addr: hop})
	deadline := clk.Now().Add(5 * time.Hour)
	for f.queueDepth() > 0 && clk.Now().Before(deadline) {
		drain(t, f)
		clk.advance(outageStep)
	}
	if n := f.queueDepth(); n != 0 {
		t.Fatalf("queue depth %d after the next hop came back, want 0", n)
	}
	copies := map[string]int{}
	for _, tr := range s.transactions() {
		for _, a := range tr.accepted {
			copies[a]++
		}
	}
	for _, r := range rcpts {
		if copies[r] != 1 {
			t.Errorf("%s was delivered %d times, want exactly once", r, copies[r])
		}
	}
	if len(copies) != outageMessages {
		t.Errorf("the next hop got %d distinct recipients, want %d", len(copies), outageMessages)
	}
}

// TestRetryNowForgetsUnreachableNextHops: a next hop that refused a
// connection is not dialled again for DeadTime; an admin's retry
// (Worker.RetryNow) tries it at once.
func TestRetryNowForgetsUnreachableNextHops(t *testing.T) {
	f, clk := newRelayFixture(t)
	f.w.Relay.DeadTime = time.Hour
	hop := unusedAddr(t)
	f.route(directory.Route{Domain: relayDomain, Type: directory.RouteSMTP, Target: hop, TLS: directory.TLSNone})
	m := f.enqueue(rx)
	f.runOnce(1)
	f.lastEvent(m, rx, "Deferred", "cannot connect")

	s := startSink(t, sinkOptions{addr: hop})
	clk.advance(time.Minute)
	f.runOnce(1)
	f.lastEvent(m, rx, "Deferred", "not tried again")
	if s.rcpts(rx) != 0 {
		t.Fatal("the next hop was dialled within its dead time")
	}
	f.w.RetryNow()
	clk.advance(5 * time.Minute)
	f.runOnce(1)
	f.wantStates(m, map[string]queue.RecipientState{rx: queue.RecipientDelivered})
	onlyOnce(t, s, rx)
}
