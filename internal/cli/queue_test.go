package cli_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// TestQueueCommands: a message for a next hop that is down waits in the
// queue, deferred; the queue commands list, hold, release, retry and
// delete it, and trace shows each step with the admin.
func TestQueueCommands(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "relay.test", "--type", "internal-relay")
	// A port nothing listens on: every attempt is deferred.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	n.ok(t, "route", "set", "relay.test", "--type", "smtp", "--target", down, "--tls", "none")

	st := n.srv.Store
	ctx := t.Context()
	tenant, err := st.TenantByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(rcpt string) string {
		now := time.Now()
		body := []byte("From: app@relay.test\r\nSubject: Waiting\r\n\r\nhello\r\n")
		m := &queue.Message{QueueID: queue.NewID(now), TenantID: tenant.ID, AccountID: 1, Sender: "app@relay.test",
			Recipients: []string{rcpt}, MessageID: "w@relay.test", Subject: "Waiting", ClientIP: "192.0.2.1", Size: int64(len(body)),
			ReceivedAt: now, Body: body}
		if err := st.Enqueue(ctx, []*queue.Message{m}, nil); err != nil {
			t.Fatal(err)
		}
		return m.QueueID
	}
	id := enqueue("x@relay.test")
	other := enqueue("y@relay.test")

	listJSON := func(args ...string) []store.QueueItem {
		t.Helper()
		var page struct {
			Items []store.QueueItem `json:"items"`
		}
		out := n.ok(t, append([]string{"queue", "list", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatalf("queue list --json: %v\n%s", err, out)
		}
		return page.Items
	}
	// The node's worker tries both (they are due at once) and defers them.
	deadline := time.Now().Add(15 * time.Second)
	for len(listJSON("--status", "deferred")) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the messages were not deferred: %+v", listJSON())
		}
		time.Sleep(50 * time.Millisecond)
	}

	out := n.ok(t, "queue", "list", "--domain", "relay.test")
	for _, w := range []string{"QUEUE ID", "NEXT ATTEMPT", "LAST REPLY", id, "deferred", "x@relay.test", "cannot connect"} {
		if !strings.Contains(out, w) {
			t.Errorf("queue list lacks %q:\n%s", w, out)
		}
	}
	if r := n.run(t, "", "queue", "list", "--limit", "1"); r.code != 0 || !strings.Contains(r.stderr, "hve queue list --after "+id) ||
		strings.Contains(r.stdout, other) {
		t.Errorf("queue list --limit 1: exit %d\n%s%s; want the first message and the cursor", r.code, r.stdout, r.stderr)
	}
	if out := n.ok(t, "queue", "list", "--after", id); !strings.Contains(out, other) || strings.Contains(out, id) {
		t.Errorf("queue list --after: %s", out)
	}
	if out := n.ok(t, "queue", "show", "<"+strings.ToLower(id)+">"); !strings.Contains(out, "x@relay.test") || !strings.Contains(out, "status:       deferred") {
		t.Errorf("queue show:\n%s", out)
	}

	if out := n.ok(t, "queue", "hold", id); !strings.Contains(out, "held "+id) || !strings.Contains(out, "held by admin-token") {
		t.Errorf("queue hold: %q", out)
	}
	if items := listJSON("--status", "held"); len(items) != 1 || items[0].QueueID != id {
		t.Errorf("held messages = %+v", items)
	}
	for _, c := range []struct {
		args []string
		code int
		word string
	}{
		{[]string{"queue", "hold", id}, 1, "held already"},
		{[]string{"queue", "retry", id}, 1, "release it"},
		{[]string{"queue", "release", other}, 1, "not held"},
		{[]string{"queue", "delete", "NOSUCHQUEUEID0000000"}, 1, "not in the queue"},
		{[]string{"queue", "list", "--status", "stuck"}, 1, "use held, active, deferred or pending"},
		{[]string{"queue", "retry"}, 2, "expected ID"},
		{[]string{"queue", "retry", id, "--all"}, 2, "not both"},
		{[]string{"queue", "retry", id, "--domain", "relay.test"}, 2, "--domain goes with --all"},
	} {
		r := n.run(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.word) {
			t.Errorf("hve %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.word)
		}
	}
	if out := n.ok(t, "queue", "release", id); !strings.Contains(out, "released "+id) {
		t.Errorf("queue release: %q", out)
	}
	n.ok(t, "queue", "retry", other)
	if out := n.ok(t, "queue", "retry", "--all", "--domain", "relay.test"); !strings.Contains(out, "retrying") {
		t.Errorf("queue retry --all: %q", out)
	}
	if out := n.ok(t, "queue", "delete", id); !strings.Contains(out, "deleted "+id) {
		t.Errorf("queue delete: %q", out)
	}
	for _, it := range listJSON() {
		if it.QueueID == id {
			t.Errorf("the deleted message is still listed: %+v", it)
		}
	}

	events, err := st.SearchTrace(ctx, trace.Query{TenantID: tenant.ID, QueueID: id})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Event] = true
		if e.Event != trace.EventDeferred && !strings.Contains(e.Detail, "admin-token (via cli)") {
			t.Errorf("%s event %q does not name the admin", e.Event, e.Detail)
		}
	}
	for _, name := range []string{trace.EventDeferred, trace.EventHeld, trace.EventReleased, trace.EventFailed} {
		if !seen[name] {
			t.Errorf("no %s event in trace: %+v", name, events)
		}
	}
	// The worker may have been trying the released message when it was
	// deleted (a Deferred event may follow); the recipient failed anyway.
	rcpts, err := st.QueueRecipients(ctx, id)
	if err != nil || len(rcpts) != 1 || rcpts[0].State != queue.RecipientFailed || !strings.Contains(rcpts[0].LastReply, "deleted from the queue") {
		t.Errorf("recipient of the deleted message = %+v, %v; want failed, deleted", rcpts, err)
	}
}
