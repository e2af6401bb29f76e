package server_test

// Webhooks, alerts and failure reports end to end (docs/webhooks.md): a
// webhook receiver started by the test gets the signed warning level alert
// and the delivery events of messages sent over SMTP, and a message with a
// recipient that fails for good brings a report to the account's failure
// report address.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/trace"
	"hve/internal/webhook"
)

// hookReceiver is a webhook endpoint that keeps what it gets.
type hookReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	posts []hookPost
}

type hookPost struct {
	header  http.Header
	body    []byte
	payload webhook.Payload
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		p := hookPost{header: req.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &p.payload); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, body)
		}
		r.mu.Lock()
		r.posts = append(r.posts, p)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// wait polls until done accepts the posts so far, and returns them.
func (r *hookReceiver) wait(t *testing.T, what string, done func([]hookPost) bool) []hookPost {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r.mu.Lock()
		posts := append([]hookPost(nil), r.posts...)
		r.mu.Unlock()
		if done(posts) {
			return posts
		}
		if time.Now().After(deadline) {
			var got []string
			for _, p := range posts {
				got = append(got, string(p.body))
			}
			t.Fatalf("timed out waiting for %s; the receiver has:\n%s", what, strings.Join(got, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func find(posts []hookPost, match func(webhook.Payload) bool) *hookPost {
	for i := range posts {
		if match(posts[i].payload) {
			return &posts[i]
		}
	}
	return nil
}

func TestWebhookGetsSignedAlertAndDeliveryEvents(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	rcv := newHookReceiver(t)
	var created struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	if code := n.admin("POST", "/api/v1/tenants/default/webhooks", map[string]any{"url": rcv.URL + "/hve"}, &created); code != 201 || created.Secret == "" {
		t.Fatalf("creating the webhook: %d %+v", code, created)
	}
	// A warning at half of a daily cap of 4: the message to alice and bob
	// reaches it.
	n.limitAccount(appAddr, func(a *directory.Account) { a.DailyRecipientLimit, a.WarnAt = 4, 50 })
	c := n.signIn()
	qid := accepted(t)(c.send(appAddr, []string{"alice@" + domain, "bob@" + domain}, message("hello", "Subject: webhook test")))

	posts := rcv.wait(t, "the alert and two deliveries", func(posts []hookPost) bool {
		return find(posts, func(p webhook.Payload) bool { return p.Event == "alert" }) != nil &&
			find(posts, func(p webhook.Payload) bool { return p.Event == "delivered" && p.Recipient == "alice@"+domain }) != nil &&
			find(posts, func(p webhook.Payload) bool { return p.Event == "delivered" && p.Recipient == "bob@"+domain }) != nil
	})
	for _, p := range posts {
		if !webhook.Verify(created.Secret, p.body, p.header.Get(webhook.HeaderSignature)) {
			t.Errorf("POST %s: the signature %q does not verify", p.body, p.header.Get(webhook.HeaderSignature))
		}
		if p.header.Get(webhook.HeaderEvent) != p.payload.Event || p.header.Get(webhook.HeaderDelivery) == "" || p.payload.Tenant != "default" {
			t.Errorf("POST %s with headers %v", p.body, p.header)
		}
	}
	al := find(posts, func(p webhook.Payload) bool { return p.Event == "alert" }).payload
	if al.Kind != "warning_level" || al.Account != appAddr || !strings.Contains(al.Detail, "reached 50% of its daily limit: 2 of 4") ||
		al.Values["limit"] != float64(4) || al.Values["used"] != float64(2) {
		t.Errorf("alert payload = %+v", al)
	}
	d := find(posts, func(p webhook.Payload) bool { return p.Event == "delivered" && p.Recipient == "alice@"+domain }).payload
	if d.QueueID != qid || d.Sender != appAddr || d.Subject != "webhook test" || d.Status != "Delivered" || d.MessageID == "" {
		t.Errorf("delivered payload = %+v", d)
	}
	// The alert is in trace too, once.
	evs := n.waitTrace(trace.Query{Sender: appAddr}, "the alert in trace", func(evs []trace.Event) bool { return countEvents(evs, trace.EventAlert) == 1 })
	if countEvents(evs, trace.EventAlert) != 1 {
		t.Errorf("trace:\n%s", formatEvents(evs))
	}
}

func TestFailureReportMail(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	rcv := newHookReceiver(t)
	var created map[string]any
	if code := n.admin("POST", "/api/v1/tenants/default/webhooks", map[string]any{"url": rcv.URL, "secret": "failure-secret-123",
		"events": []string{"failed"}}, &created); code != 201 {
		t.Fatalf("creating the webhook: %d %v", code, created)
	}
	var acc map[string]any
	if code := n.admin("PATCH", "/api/v1/tenants/default/accounts/"+appAddr, map[string]any{"failure_report_to": "carol@" + domain}, &acc); code != 200 ||
		acc["failure_report_to"] != "carol@"+domain {
		t.Fatalf("setting the failure report address: %d %v", code, acc)
	}
	// An unknown address of an internal-relay domain without a next hop
	// fails for good at once; alice gets hers.
	c := n.signIn()
	lost := "nobody@" + relayDomain
	qid := accepted(t)(c.send(appAddr, []string{"alice@" + domain, lost}, message("hello", "Subject: quarterly numbers")))

	var report []byte
	deadline := time.Now().Add(15 * time.Second)
	for report == nil {
		for _, m := range n.mailboxMessages("carol@" + domain) {
			if strings.HasPrefix(m.Subject, "Delivery failed") {
				report = []byte(n.body(m.QueueID))
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no failure report reached carol")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"Subject: Delivery failed: quarterly numbers", "From: \"hve delivery reports\" <postmaster@contoso.test>",
		"Auto-Submitted: auto-generated", lost, "queue id:   " + qid, "sender:     " + appAddr} {
		if !strings.Contains(string(report), want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(string(report), "alice@") {
		t.Errorf("the report names the delivered recipient:\n%s", report)
	}
	// The webhook heard of the failure, signed with the given secret.
	posts := rcv.wait(t, "the failed event", func(posts []hookPost) bool {
		return find(posts, func(p webhook.Payload) bool { return p.Recipient == lost }) != nil
	})
	p := find(posts, func(p webhook.Payload) bool { return p.Recipient == lost })
	if p.payload.Event != "failed" || p.payload.QueueID != qid || !webhook.Verify("failure-secret-123", p.body, p.header.Get(webhook.HeaderSignature)) {
		t.Errorf("failed event %s with headers %v", p.body, p.header)
	}
	for _, p := range posts {
		if p.payload.Event != "failed" {
			t.Errorf("a webhook subscribed to failed only got %s", p.body)
		}
	}
}
