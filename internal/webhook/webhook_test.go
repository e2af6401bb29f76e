package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

var discard = slog.New(slog.DiscardHandler)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// clock is a controlled time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// post is one request a receiver got.
type post struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint that records what it gets and answers
// with the status codes in replies, in turn (200 once they run out).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	posts   []post
	replies []int
}

func newReceiver(t *testing.T, replies ...int) *receiver {
	r := &receiver{replies: replies}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.posts = append(r.posts, post{req.URL.Path, req.Header.Clone(), body})
		code := http.StatusOK
		if len(r.replies) > 0 {
			code, r.replies = r.replies[0], r.replies[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, "reply "+strconv.Itoa(code))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.posts)
}

func TestSign(t *testing.T) {
	body := []byte(`{"event":"alert"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign("s3cret", body); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if !Verify("s3cret", body, want) || Verify("other", body, want) || Verify("s3cret", append(body, ' '), want) || Verify("s3cret", body, "") {
		t.Error("Verify accepts a wrong signature or refuses the right one")
	}
	if s := NewSecret(); !strings.HasPrefix(s, "whsec_") || len(s) < 32 || s == NewSecret() {
		t.Errorf("NewSecret = %q", s)
	}
}

func TestParseEvents(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
		bad  bool
	}{
		{nil, "alert,delivered,deferred,failed", false},
		{[]string{"all"}, "alert,delivered,deferred,failed", false},
		{[]string{"Failed, alert"}, "alert,failed", false},
		{[]string{"failed", "failed"}, "failed", false},
		{[]string{"bounced"}, "", true},
	} {
		got, err := ParseEvents(tc.in)
		if (err != nil) != tc.bad || strings.Join(got, ",") != tc.want {
			t.Errorf("ParseEvents(%q) = %v, %v; want %s (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	for _, u := range []string{"https://hooks.example.com/x?a=1", "http://10.0.0.5:8080/hve"} {
		if _, err := CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q): %v", u, err)
		}
	}
	for _, u := range []string{"ftp://x", "hooks.example.com/x", "https://", "https://h/#frag", "://"} {
		if _, err := CheckURL(u); err == nil {
			t.Errorf("CheckURL(%q) accepted it", u)
		}
	}
}

// fixture is a store with tenant contoso (domain contoso.test), a clock,
// a dispatcher and a sender on that clock.
type fixture struct {
	st     *sqlite.Store
	tenant directory.Tenant
	clock  *clock
	disp   *Dispatcher
	send   *Sender
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	tn, err := st.CreateTenant(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: tn.ID, Name: "contoso.test", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	f := &fixture{st: st, tenant: tn, clock: c, disp: NewDispatcher(st, discard), send: NewSender(st, "node1", discard)}
	f.disp.Now, f.disp.Hostname = c.now, "hve.test"
	f.send.Now = c.now
	f.send.Jitter = func(d time.Duration) time.Duration { return d }
	return f
}

func (f *fixture) webhook(t *testing.T, url, secret string, events ...string) store.Webhook {
	t.Helper()
	w, err := f.st.CreateWebhook(context.Background(), store.Webhook{TenantID: f.tenant.ID, URL: url, Secret: secret, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (f *fixture) event(e trace.Event) trace.Event {
	e.TenantID, e.Time = f.tenant.ID, f.clock.now()
	return e
}

func TestDispatchAndSend(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rcv := newReceiver(t)
	all := f.webhook(t, rcv.URL+"/all", "secret-of-all-events", Events...)
	failedOnly := f.webhook(t, rcv.URL+"/failed", "secret-of-failures", EventFailed)

	msg := trace.Event{QueueID: "Q1", MessageID: "m1@contoso.test", Sender: "app@contoso.test", Subject: "Invoice", ClientIP: "192.0.2.1", Size: 100}
	ev := func(name, status, rcpt, detail string) trace.Event {
		e := msg
		e.Event, e.Status, e.Recipient, e.Detail = name, status, rcpt, detail
		return f.event(e)
	}
	if err := f.st.AddEvents(ctx, []trace.Event{
		ev(trace.EventReceived, trace.StatusPending, "bob@contoso.test", "accepted"),
		ev(trace.EventDelivered, trace.StatusDelivered, "bob@contoso.test", "delivered to mailbox bob@contoso.test"),
		ev(trace.EventDeferred, trace.StatusPending, "carol@contoso.test", "451 try later; next attempt at 10:01"),
		ev(trace.EventFailed, trace.StatusFailed, "dave@contoso.test", "550 5.1.1 no such user"),
		f.event(trace.Event{Sender: "app@contoso.test", Event: trace.EventSignInRefused, Status: trace.StatusRejected, Detail: "535"}),
	}); err != nil {
		t.Fatal(err)
	}
	al, added, err := f.st.AddAlert(ctx, store.Alert{TenantID: f.tenant.ID, Time: f.clock.now(), Account: "app@contoso.test", Kind: "anomaly",
		Message: "too much", Values: map[string]any{"recipients": 5000}, Key: "k"})
	if err != nil || !added {
		t.Fatal(added, err)
	}
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	rows := func(w store.Webhook) []store.WebhookDelivery {
		list, err := f.st.WebhookDeliveries(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	events := func(list []store.WebhookDelivery) (out []string) {
		for _, d := range list {
			out = append(out, d.Event)
		}
		return
	}
	if got := events(rows(all)); !slices.Equal(got, []string{"delivered", "deferred", "failed", "alert"}) {
		t.Errorf("outbox of the all-events webhook = %v", got)
	}
	if got := events(rows(failedOnly)); !slices.Equal(got, []string{"failed"}) {
		t.Errorf("outbox of the failures webhook = %v", got)
	}

	if n, err := f.send.RunOnce(ctx); n != 5 || err != nil {
		t.Fatalf("RunOnce = %d, %v; want 5 rows sent", n, err)
	}
	posts := rcv.got()
	if len(posts) != 5 {
		t.Fatalf("the receiver got %d posts, want 5", len(posts))
	}
	byEvent := map[string]Payload{}
	for _, p := range posts {
		secret := map[string]string{"/all": "secret-of-all-events", "/failed": "secret-of-failures"}[p.path]
		if !Verify(secret, p.body, p.header.Get(HeaderSignature)) {
			t.Errorf("POST to %s: signature %q does not verify", p.path, p.header.Get(HeaderSignature))
		}
		if p.header.Get("Content-Type") != "application/json" || p.header.Get(HeaderDelivery) == "" {
			t.Errorf("POST to %s: headers %v", p.path, p.header)
		}
		var pl Payload
		if err := json.Unmarshal(p.body, &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Event != p.header.Get(HeaderEvent) || pl.Tenant != "contoso" || !pl.Time.Equal(f.clock.now()) || pl.EventID == 0 {
			t.Errorf("payload %s with header %s", p.body, p.header.Get(HeaderEvent))
		}
		if p.path == "/all" {
			byEvent[pl.Event] = pl
		}
	}
	if d := byEvent["failed"]; d.QueueID != "Q1" || d.MessageID != "m1@contoso.test" || d.Sender != "app@contoso.test" || d.Recipient != "dave@contoso.test" ||
		d.Status != "Failed" || d.Detail != "550 5.1.1 no such user" || d.Subject != "Invoice" || d.Kind != "" {
		t.Errorf("failed payload = %+v", d)
	}
	if d := byEvent["alert"]; d.Account != "app@contoso.test" || d.Kind != "anomaly" || d.Detail != "too much" || d.EventID != al.EventID ||
		d.Values["recipients"] != float64(5000) || d.QueueID != "" {
		t.Errorf("alert payload = %+v", d)
	}
	for _, d := range append(rows(all), rows(failedOnly)...) {
		if d.State != store.WebhookDone || d.Attempts != 1 {
			t.Errorf("after sending: row %d is %s after %d attempts", d.ID, d.State, d.Attempts)
		}
	}
	// Nothing new: a second pass adds nothing and sends nothing.
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.send.RunOnce(ctx); n != 0 || len(rcv.got()) != 5 {
		t.Errorf("a second round sent %d more", n)
	}
}

// TestRetries: 500s are retried on the schedule with the same body and
// delivery id until a 2xx.
func TestRetries(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rcv := newReceiver(t, 500, 503)
	w := f.webhook(t, rcv.URL, "retry-secret-retry", EventFailed)
	if err := f.st.AddEvents(ctx, []trace.Event{f.event(trace.Event{QueueID: "Q", Sender: "a@contoso.test", Recipient: "x@contoso.test",
		Event: trace.EventFailed, Status: trace.StatusFailed, Detail: "550"})}); err != nil {
		t.Fatal(err)
	}
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := f.clock.now()
	row := func() store.WebhookDelivery {
		list, err := f.st.WebhookDeliveries(ctx, w.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("outbox = %+v, %v", list, err)
		}
		return list[0]
	}
	step := func(at time.Duration, wantSent int) {
		t.Helper()
		f.clock.set(t0.Add(at))
		if n, err := f.send.RunOnce(ctx); n != wantSent || err != nil {
			t.Fatalf("at +%v: RunOnce = %d, %v; want %d", at, n, err, wantSent)
		}
	}
	step(0, 1)
	if r := row(); r.State != store.WebhookPending || r.Attempts != 1 || !r.NextAttemptAt.Equal(t0.Add(10*time.Second)) || !strings.Contains(r.LastError, "500") {
		t.Errorf("after a 500: %+v", r)
	}
	step(9*time.Second, 0)
	step(10*time.Second, 1)
	if r := row(); r.Attempts != 2 || !r.NextAttemptAt.Equal(t0.Add(40*time.Second)) || !strings.Contains(r.LastError, "503") {
		t.Errorf("after a 503: %+v", r)
	}
	step(40*time.Second, 1)
	if r := row(); r.State != store.WebhookDone || r.Attempts != 3 || r.LastError != "" {
		t.Errorf("after a 200: %+v", r)
	}
	posts := rcv.got()
	if len(posts) != 3 {
		t.Fatalf("%d posts, want 3", len(posts))
	}
	for _, p := range posts[1:] {
		if string(p.body) != string(posts[0].body) || p.header.Get(HeaderDelivery) != posts[0].header.Get(HeaderDelivery) ||
			p.header.Get(HeaderSignature) != posts[0].header.Get(HeaderSignature) {
			t.Errorf("a retry differs from the first attempt: %s %v", p.body, p.header)
		}
	}
}

// TestGiveUp: a receiver that never answers 2xx (here: a redirect, then a
// closed server) is tried on the schedule for a day, the last time at 24
// hours, and then given up.
func TestGiveUp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
	}))
	w := f.webhook(t, redirect.URL, "give-up-secret-1", EventAlert)
	if _, _, err := f.st.AddAlert(ctx, store.Alert{TenantID: f.tenant.ID, Time: f.clock.now(), Account: "a@contoso.test", Kind: "anomaly", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := f.clock.now()
	var attempts []time.Duration
	for range 100 {
		list, err := f.st.WebhookDeliveries(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		d := list[0]
		if d.State != store.WebhookPending {
			if d.State != store.WebhookFailed || d.Attempts != len(attempts) {
				t.Errorf("final row = %+v after %d attempts", d, len(attempts))
			}
			break
		}
		if len(attempts) == 1 {
			if !strings.Contains(d.LastError, "302") {
				t.Errorf("after a redirect: last error %q", d.LastError)
			}
			redirect.Close() // from now on: connection refused
		}
		f.clock.set(d.NextAttemptAt)
		attempts = append(attempts, d.NextAttemptAt.Sub(t0))
		if n, err := f.send.RunOnce(ctx); n != 1 || err != nil {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
	}
	// 10s, 30s, 2m and 10m after the first four failures, then hourly,
	// and the last attempt at the 24-hour deadline.
	want := []time.Duration{0, 10 * time.Second, 40 * time.Second, 160 * time.Second, 760 * time.Second}
	for h := 1; h <= 23; h++ {
		want = append(want, 760*time.Second+time.Duration(h)*time.Hour)
	}
	want = append(want, 24*time.Hour)
	if !slices.Equal(attempts, want) {
		t.Errorf("attempts at %v\nwant %v", attempts, want)
	}
}

// TestFailureReport: a message of an account with a failure report
// address that ends with failed recipients gets one report, once it is
// finished, listing the failed recipients; nothing reports on a report.
func TestFailureReport(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	st := f.st
	ops, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: f.tenant.ID, Name: "ops", DisplayName: "Ops", Address: "ops@contoso.test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []directory.Account{
		{TenantID: f.tenant.ID, Name: "app", DisplayName: "App", Address: "app@contoso.test", Aliases: []string{"alias@contoso.test"},
			PasswordHash: "x", Enabled: true, FailureReportTo: ops.Address},
		{TenantID: f.tenant.ID, Name: "quiet", DisplayName: "Quiet", Address: "quiet@contoso.test", PasswordHash: "x", Enabled: true},
	} {
		if _, err := st.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	now := f.clock.now()
	enqueue := func(sender string, rcpts ...string) *queue.Message {
		m := &queue.Message{QueueID: queue.NewID(now), TenantID: f.tenant.ID, Sender: sender, Recipients: rcpts, MessageID: "m-" + sender,
			Subject: "Report ✓", ReceivedAt: now, Body: []byte("Subject: x\r\n\r\nx\r\n")}
		var evs []trace.Event
		for _, r := range rcpts {
			evs = append(evs, trace.Event{TenantID: f.tenant.ID, Time: now, QueueID: m.QueueID, MessageID: m.MessageID, Sender: sender,
				Recipient: r, Event: trace.EventReceived, Status: trace.StatusPending})
		}
		if err := st.Enqueue(ctx, []*queue.Message{m}, evs); err != nil {
			t.Fatal(err)
		}
		return m
	}
	finish := func(m *queue.Message, rcpt string, state queue.RecipientState, reply string) {
		t.Helper()
		names := map[queue.RecipientState][2]string{
			queue.RecipientDelivered: {trace.EventDelivered, trace.StatusDelivered},
			queue.RecipientFailed:    {trace.EventFailed, trace.StatusFailed},
			queue.RecipientDeferred:  {trace.EventDeferred, trace.StatusPending},
		}[state]
		event, status := names[0], names[1]
		r := queue.Recipient{Address: rcpt, State: state, Attempts: 1, LastReply: reply, UpdatedAt: now}
		if state == queue.RecipientDeferred {
			r.NextAttemptAt = now.Add(time.Minute)
		}
		err := st.Finish(ctx, []store.Delivery{{QueueID: m.QueueID, Recipients: []queue.Recipient{r},
			Events: []trace.Event{{TenantID: f.tenant.ID, Time: now, QueueID: m.QueueID, MessageID: m.MessageID, Sender: m.Sender, Recipient: rcpt,
				Event: event, Status: status, Detail: reply, Subject: m.Subject}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	reported := func(m *queue.Message) []byte {
		body, err := st.MessageBody(ctx, ReportQueueID(m.QueueID))
		if err != nil {
			return nil
		}
		return body
	}

	// From the alias: one recipient fails, one is still deferred: no
	// report yet.
	m1 := enqueue("alias@contoso.test", "x@contoso.test", "y@contoso.test", "z@contoso.test")
	finish(m1, "x@contoso.test", queue.RecipientFailed, "550 5.1.1 <x@contoso.test>: no such user")
	finish(m1, "y@contoso.test", queue.RecipientDeferred, "451 busy")
	finish(m1, "z@contoso.test", queue.RecipientDelivered, "250 ok")
	// The quiet account has no report address; its failure stays in trace.
	m2 := enqueue("quiet@contoso.test", "x@contoso.test")
	finish(m2, "x@contoso.test", queue.RecipientFailed, "550 no")
	// Everything delivered: no report.
	m3 := enqueue("app@contoso.test", "z@contoso.test")
	finish(m3, "z@contoso.test", queue.RecipientDelivered, "250 ok")
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*queue.Message{m1, m2, m3} {
		if b := reported(m); b != nil {
			t.Errorf("message from %s reported early or without cause:\n%s", m.Sender, b)
		}
	}
	// y fails at its retry: m1 is finished and reported.
	finish(m1, "y@contoso.test", queue.RecipientFailed, "550 5.7.1 rejected after retries")
	var woken int
	f.disp.OnReport = func() { woken++ }
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	body := string(reported(m1))
	for _, want := range []string{"To: <ops@contoso.test>", "From: \"hve delivery reports\" <postmaster@contoso.test>", "Auto-Submitted: auto-generated",
		"X-Hve-Report: failure", "Subject: =?utf-8?q?Delivery_failed:_Report_=E2=9C=93?=", "x@contoso.test", "550 5.1.1 <x@contoso.test>: no such user",
		"y@contoso.test", "550 5.7.1 rejected after retries", "queue id:   " + m1.QueueID, "message id: <m-alias@contoso.test>", "sender:     alias@contoso.test",
		"subject:    Report ✓", "hve account set app@contoso.test --failure-report-to none"} {
		if !strings.Contains(body, want) {
			t.Errorf("the report lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "z@contoso.test") || strings.Contains(body, "\n\n") || woken != 1 {
		t.Errorf("the report names the delivered recipient, has bare LFs, or delivery was woken %d times:\n%s", woken, body)
	}
	rq, err := st.QueueRecipients(ctx, ReportQueueID(m1.QueueID))
	if err != nil || len(rq) != 1 || rq[0].Address != "ops@contoso.test" || rq[0].State != queue.RecipientPending {
		t.Errorf("the report's recipients = %+v, %v", rq, err)
	}
	evs, err := st.SearchTrace(ctx, trace.Query{TenantID: f.tenant.ID, QueueID: ReportQueueID(m1.QueueID)})
	if err != nil || len(evs) != 1 || evs[0].Event != trace.EventReceived || evs[0].Sender != "" || evs[0].Recipient != "ops@contoso.test" {
		t.Errorf("the report's trace = %+v, %v", evs, err)
	}

	// The same events read again (a crash before the cursor moved,
	// another node) queue nothing new.
	events, err := st.MeterEvents(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.disp.failureReports(ctx, events); n != 0 || err != nil {
		t.Errorf("reading the events again queued %d reports (%v)", n, err)
	}

	// The report itself fails: no report about the report.
	report := &queue.Message{QueueID: ReportQueueID(m1.QueueID), TenantID: f.tenant.ID, Sender: ""}
	finish(report, "ops@contoso.test", queue.RecipientFailed, "mailbox gone")
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if b := reported(report); b != nil {
		t.Errorf("a report about a report:\n%s", b)
	}

	// A message deleted (after [queue] keep_finished) before the
	// dispatcher reached its failure gets no report, and the operator a
	// warning naming it.
	var logged strings.Builder
	f.disp.log = slog.New(slog.NewTextHandler(&logged, nil))
	m4 := enqueue("app@contoso.test", "x@contoso.test")
	finish(m4, "x@contoso.test", queue.RecipientFailed, "550 no")
	if n, err := st.PruneFinished(ctx, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0); err != nil || n == 0 {
		t.Fatalf("PruneFinished = %d, %v", n, err)
	}
	if err := f.disp.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if b := reported(m4); b != nil {
		t.Errorf("a report for a deleted message:\n%s", b)
	}
	if !strings.Contains(logged.String(), "failure report not queued") || !strings.Contains(logged.String(), m4.QueueID) {
		t.Errorf("no warning for the report skipped; the log:\n%s", logged.String())
	}
}

func TestReportQueueID(t *testing.T) {
	id := queue.NewID(time.Now())
	r := ReportQueueID(id)
	if len(r) != 20 || r[:10] != id[:10] || r == id || ReportQueueID(id) != r || queue.CleanID(r) != r || ReportQueueID(r) == r {
		t.Errorf("ReportQueueID(%s) = %s", id, r)
	}
}
