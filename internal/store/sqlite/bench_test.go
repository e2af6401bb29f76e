package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// BenchmarkEnqueueClaimFinish measures the store's part of one accepted and
// relayed message, as in workload W1 (1 KB, one recipient): the spool
// enqueues a batch of messages with their Received events, the delivery
// worker claims them, reads each body and records each outcome with a
// Delivered event. One op is one message; a batch is what the spool or
// the worker gathers at a time under load. The last case has ten
// recipients per message, as in W2.
//
//	go test -run XXX -bench EnqueueClaimFinish -benchtime 3s ./internal/store/sqlite/
func BenchmarkEnqueueClaimFinish(b *testing.B) {
	for _, c := range []struct{ batch, rcpts int }{{1, 1}, {20, 1}, {20, 10}} {
		batch := c.batch
		name := fmt.Sprintf("batch=%d", batch)
		if c.rcpts > 1 {
			name += fmt.Sprintf(",rcpts=%d", c.rcpts)
		}
		rcpts := make([]string, c.rcpts)
		for i := range rcpts {
			rcpts[i] = fmt.Sprintf("user%d@b.example", i)
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// The delivery worker's context can be cancelled, as here.
			ctx := b.Context()
			body := bytes.Repeat([]byte("0123456789abcdef"), 64)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for done := 0; done < b.N; done += batch {
				n := min(batch, b.N-done)
				now := time.Now().UTC()
				msgs := make([]*queue.Message, n)
				var events []trace.Event
				for i := range msgs {
					// Each message has a Message-ID of its own, as in service:
					// its entries in trace_message_id go anywhere in the index.
					m := &queue.Message{
						QueueID: queue.NewID(now), TenantID: 1, AccountID: 1, Sender: "app@a.example",
						Recipients: rcpts, MessageID: fmt.Sprintf("<%d.%d@a.example>", now.UnixNano(), done+i), Subject: "hello",
						ClientIP: "192.0.2.1", Size: int64(len(body)), ReceivedAt: now, Body: body,
					}
					msgs[i] = m
					for _, r := range rcpts {
						events = append(events, trace.Event{TenantID: 1, Time: now, QueueID: m.QueueID, MessageID: m.MessageID,
							Sender: m.Sender, Recipient: r, Event: trace.EventReceived, Status: trace.StatusPending,
							Detail: "accepted from 192.0.2.1 (app@a.example)", ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size})
					}
				}
				if err := s.Enqueue(context.Background(), msgs, events); err != nil {
					b.Fatal(err)
				}
				claimed, err := s.Claim(ctx, "bench", time.Now(), n, time.Minute)
				if err != nil || len(claimed) != n {
					b.Fatalf("Claim = %d messages, %v; want %d", len(claimed), err, n)
				}
				deliveries := make([]store.Delivery, n)
				for i, m := range claimed {
					if len(m.Due) != len(rcpts) {
						b.Fatalf("claimed %s with %d due recipients, want %d", m.QueueID, len(m.Due), len(rcpts))
					}
					if _, err := s.MessageBody(ctx, m.QueueID); err != nil {
						b.Fatal(err)
					}
					at := time.Now().UTC()
					d := store.Delivery{QueueID: m.QueueID}
					for _, r := range m.Due {
						r.State, r.Attempts, r.NextAttemptAt, r.UpdatedAt, r.LastReply = queue.RecipientDelivered, 1, at, at, "250 2.0.0 Ok: queued"
						d.Recipients = append(d.Recipients, r)
						d.Events = append(d.Events, trace.Event{
							TenantID: m.TenantID, Time: at, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender,
							Recipient: r.Address, Event: trace.EventDelivered, Status: trace.StatusDelivered,
							Detail: "delivered to next hop mx.b.example:25 (attempt 1): 250 2.0.0 Ok: queued", ClientIP: m.ClientIP,
							Subject: m.Subject, Size: m.Size})
					}
					deliveries[i] = d
				}
				if err := s.Finish(ctx, deliveries); err != nil {
					b.Fatal(err)
				}
			}
			// Wall time includes waiting for fsync; the CPU time (of the
			// whole process: SQLite, database/sql, the garbage collector)
			// is what a busy node runs out of.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEnqueueFinish measures the store's part of one message on the
// path the embedded node takes under load: the spool enqueues a batch of
// messages leased to the node's worker (the hand-over), the worker records
// each outcome with a Delivered event; nothing is claimed or read back. One
// op is one message. The batch is the number of messages that share a
// commit, which is about the number of sessions waiting for one: the cost
// per message falls with it.
//
//	go test -run XXX -bench EnqueueFinish -benchtime 6000x ./internal/store/sqlite/
func BenchmarkEnqueueFinish(b *testing.B) {
	for _, c := range []struct{ batch, rcpts, size int }{
		{1, 1, 1 << 10}, {8, 1, 1 << 10}, {20, 1, 1 << 10}, {100, 1, 1 << 10}, {300, 1, 1 << 10},
		{8, 10, 1 << 10}, {100, 10, 1 << 10}, {8, 1, 100 << 10}, {100, 1, 100 << 10},
	} {
		b.Run(fmt.Sprintf("batch=%d,rcpts=%d,size=%d", c.batch, c.rcpts, c.size), func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rcpts := make([]string, c.rcpts)
			for i := range rcpts {
				rcpts[i] = fmt.Sprintf("user%d@b.example", i)
			}
			body := bytes.Repeat([]byte("x"), c.size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for done := 0; done < b.N; done += c.batch {
				relayed(b, s, min(c.batch, b.N-done), done, rcpts, body)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// relayed stores n messages as the spool does (leased to this node, with
// their Received events) and records their relaying as delivery does
// (Delivered events): the store's whole part of a message relayed at its
// first attempt. seq numbers the messages' Message-IDs.
func relayed(b *testing.B, s *Store, n, seq int, rcpts []string, body []byte) {
	ctx := context.Background()
	now := time.Now().UTC()
	msgs := make([]*queue.Message, n)
	var events []trace.Event
	deliveries := make([]store.Delivery, n)
	for i := range msgs {
		// Each message has a Message-ID of its own, as in service: its
		// entries in trace_message_id go anywhere in the index.
		m := &queue.Message{
			QueueID: queue.NewID(now), TenantID: 1, AccountID: 1, Sender: "app@a.example",
			Recipients: rcpts, MessageID: fmt.Sprintf("<%d.%d@a.example>", now.UnixNano(), seq+i), Subject: "hello",
			ClientIP: "192.0.2.1", Size: int64(len(body)), ReceivedAt: now, Body: body,
			LeaseOwner: "bench", LeaseUntil: now.Add(time.Minute),
		}
		msgs[i] = m
		d := store.Delivery{QueueID: m.QueueID}
		for _, r := range rcpts {
			events = append(events, trace.Event{TenantID: 1, Time: now, QueueID: m.QueueID, MessageID: m.MessageID,
				Sender: m.Sender, Recipient: r, Event: trace.EventReceived, Status: trace.StatusPending,
				Detail: "accepted from 192.0.2.1 (app@a.example)", ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size})
			d.Recipients = append(d.Recipients, queue.Recipient{Address: r, State: queue.RecipientDelivered, Attempts: 1,
				NextAttemptAt: now, UpdatedAt: now, LastReply: "250 2.0.0 Ok: queued"})
			d.Events = append(d.Events, trace.Event{TenantID: 1, Time: now, QueueID: m.QueueID, MessageID: m.MessageID,
				Sender: m.Sender, Recipient: r, Event: trace.EventDelivered, Status: trace.StatusDelivered,
				Detail: "delivered to next hop mx.b.example:25 (attempt 1): 250 2.0.0 Ok: queued", ClientIP: m.ClientIP,
				Subject: m.Subject, Size: m.Size})
		}
		deliveries[i] = d
	}
	if err := s.Enqueue(ctx, msgs, events); err != nil {
		b.Fatal(err)
	}
	if err := s.Finish(ctx, deliveries); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPruneFinished measures the retention job of [queue]
// keep_finished: deleting relayed 1 KB messages, their bodies and
// recipient states in batches of store.DefaultPruneBatch, each batch one
// transaction of the single writer (spool batches wait meanwhile). One op
// is one message deleted; ms/batch is how long each batch holds the
// writer.
//
//	go test -run XXX -bench PruneFinished -benchtime 20000x ./internal/store/sqlite/
func BenchmarkPruneFinished(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("x"), 1<<10)
	for done := 0; done < b.N; done += 100 {
		relayed(b, s, min(100, b.N-done), done, []string{"user@b.example"}, body)
	}
	before := time.Now().Add(time.Hour)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	batches := 0
	for {
		n, err := s.PruneFinished(context.Background(), before, store.DefaultPruneBatch)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		batches++
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if batches > 0 {
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(batches), "ms/batch")
	}
}
