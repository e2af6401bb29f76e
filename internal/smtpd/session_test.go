package smtpd_test

// Failure injection at the endpoint's boundaries: the spool's writer and the
// directory. The endpoint runs on a real SQLite store; only the failing
// calls are replaced. The rest of the endpoint's behaviour is tested
// end to end in internal/server/smtp_test.go.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/access"
	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/queue"
	"hve/internal/smtpd"
	"hve/internal/store"
	"hve/internal/store/sqlite"
	"hve/internal/tlsutil"
	"hve/internal/trace"
)

const (
	appAddr    = "app@contoso.test"
	appPW      = "app-password" // the mailbox shared has it too
	sharedAddr = "shared@contoso.test"
	alice      = "alice@contoso.test"
	bob        = "bob@contoso.test"
)

var errDisk = errors.New("disk I/O error")

// flakyWriter writes through to the store unless told to fail.
type flakyWriter struct {
	st *sqlite.Store
	mu sync.Mutex
	// err, when set, is returned instead of writing.
	err   error
	calls int
}

func (w *flakyWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

func (w *flakyWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

func (w *flakyWriter) Enqueue(ctx context.Context, msgs []*queue.Message, events []trace.Event) error {
	w.mu.Lock()
	w.calls++
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	return w.st.Enqueue(ctx, msgs, events)
}

// fullDirectory is what the endpoint and its sign-in checks read.
type fullDirectory interface {
	smtpd.Directory
	access.Directory
}

// brokenDirectory fails the lookups that are switched on.
type brokenDirectory struct {
	fullDirectory
	account, domain, lookup bool
}

func (d brokenDirectory) AccountByAddress(ctx context.Context, a string) (directory.Account, error) {
	if d.account {
		return directory.Account{}, errDisk
	}
	return d.fullDirectory.AccountByAddress(ctx, a)
}

func (d brokenDirectory) DomainByName(ctx context.Context, name string) (directory.Domain, error) {
	if d.domain {
		return directory.Domain{}, errDisk
	}
	return d.fullDirectory.DomainByName(ctx, name)
}

func (d brokenDirectory) Lookup(ctx context.Context, a string) (directory.Entry, error) {
	if d.lookup {
		return directory.Entry{}, errDisk
	}
	return d.fullDirectory.Lookup(ctx, a)
}

type recorder struct {
	mu     sync.Mutex
	events []trace.Event
}

func (r *recorder) Record(e trace.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// fixture is an endpoint on a loopback port over a seeded SQLite store.
type fixture struct {
	t        *testing.T
	st       *sqlite.Store
	tenant   int64
	mailbox  directory.Mailbox // shared, the mailbox with a password
	writer   *flakyWriter
	rec      *recorder // the refusals, which do not go through the spool
	addr     string
	endpoint *smtpd.Endpoint
}

// newFixture starts an HVE endpoint; wrap, if not nil, replaces the
// directory the endpoint and its sign-in checks see.
func newFixture(t *testing.T, wrap func(fullDirectory) fullDirectory) *fixture {
	return newFixtureWith(t, smtpd.Config{}, wrap)
}

// newFixtureWith starts an endpoint configured by cfg (Hostname and TLS
// are filled in).
func newFixtureWith(t *testing.T, cfg smtpd.Config, wrap func(fullDirectory) fullDirectory) *fixture {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ten, err := st.CreateTenant(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := password.Hash(appPW)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: ten.ID, Name: "contoso.test", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: ten.ID, Name: "alice", Address: alice}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: ten.ID, Name: "bob", Address: bob}); err != nil {
		t.Fatal(err)
	}
	shared, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: ten.ID, Name: "shared", DisplayName: "Shared", Address: sharedAddr, PasswordHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAccount(ctx, directory.Account{TenantID: ten.ID, Name: "app", Address: appAddr, PasswordHash: hash, Enabled: true}); err != nil {
		t.Fatal(err)
	}

	tlsCfg, err := tlsutil.Config("", "", dataDir, "hve.test")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := &flakyWriter{st: st}
	spool := queue.NewSpool(w, nil, log)
	var dir fullDirectory = st
	if wrap != nil {
		dir = wrap(st)
	}
	rec := &recorder{}
	auth := access.New(dir, nil, rec, access.Config{}, log)
	cfg.Hostname, cfg.TLS = "hve.test", tlsCfg
	e := smtpd.New(context.Background(), cfg, dir, auth, spool, rec, log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(l)
	t.Cleanup(func() {
		e.Close()
		spool.Close()
	})
	return &fixture{t: t, st: st, tenant: ten.ID, mailbox: shared, writer: w, rec: rec, addr: l.Addr().String(), endpoint: e}
}

// client is a minimal raw SMTP client that shows replies as sent.
type client struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func (f *fixture) dial() *client {
	f.t.Helper()
	conn, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := &client{t: f.t, conn: conn, tp: textproto.NewConn(conn)}
	f.t.Cleanup(func() { c.conn.Close() })
	c.want(c.read())(220, "")
	c.want(c.cmd("EHLO client.test"))(250, "")
	c.want(c.cmd("STARTTLS"))(220, "2.0.0")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		f.t.Fatal(err)
	}
	c.conn, c.tp = tc, textproto.NewConn(tc)
	c.want(c.cmd("EHLO client.test"))(250, "")
	return c
}

func (c *client) read() (int, string) {
	c.t.Helper()
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, text
}

func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// want returns a check of the reply: its code, its enhanced code (if not
// empty) and words its text must hold.
func (c *client) want(code int, text string) func(wantCode int, enhanced string, words ...string) {
	return func(wantCode int, enhanced string, words ...string) {
		c.t.Helper()
		if code != wantCode || enhanced != "" && !strings.HasPrefix(text, enhanced+" ") {
			c.t.Fatalf("reply %d %s, want %d %s", code, text, wantCode, enhanced)
		}
		for _, w := range words {
			if !strings.Contains(text, w) {
				c.t.Errorf("reply %d %s, want it to contain %q", code, text, w)
			}
		}
	}
}

func (c *client) signIn() {
	c.t.Helper()
	c.want(c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+appAddr+"\x00"+appPW))))(235, "2.0.0")
}

// send runs a transaction to alice and returns the reply to the message.
func (c *client) send(subject string) (int, string) {
	c.t.Helper()
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
	c.want(c.cmd("RCPT TO:<"+alice+">"))(250, "2.0.0")
	c.want(c.cmd("DATA"))(354, "")
	w := c.tp.DotWriter()
	fmt.Fprintf(w, "From: %s\r\nSubject: %s\r\n\r\nbody\r\n", appAddr, subject)
	if err := w.Close(); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// stored reports the trace events and queue depth in the store.
func (f *fixture) stored() (events []trace.Event, depth int) {
	f.t.Helper()
	events, err := f.st.SearchTrace(context.Background(), trace.Query{TenantID: f.tenant})
	if err != nil {
		f.t.Fatal(err)
	}
	depth, err = f.st.QueueDepth(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return events, depth
}

func TestStorageFailure(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial()
	c.signIn()
	f.writer.fail(fmt.Errorf("enqueueing 1 messages: %w", errDisk))
	c.want(c.send("first try"))(451, "4.3.0", "Temporary storage failure", "not accepted", "try again later")
	if n := f.writer.count(); n != 1 {
		t.Errorf("writer called %d times, want 1 (the failure must come from the write)", n)
	}
	// Nothing of the refused message is kept.
	if evs, depth := f.stored(); len(evs) != 0 || depth != 0 {
		t.Errorf("after a failed write: %d trace events, queue depth %d; want nothing", len(evs), depth)
	}
	// Once the store works again, the client's retry on the same session
	// is accepted.
	f.writer.fail(nil)
	code, text := c.send("retry")
	c.want(code, text)(250, "2.0.0", "OK <")
	if evs, depth := f.stored(); len(evs) != 1 || depth != 1 || evs[0].Subject != "retry" {
		t.Errorf("after the retry: events %+v, queue depth %d; want the retry only", evs, depth)
	}
}

func TestStorageFull(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial()
	c.signIn()
	f.writer.fail(fmt.Errorf("enqueueing 1 messages: %w: database or disk is full", store.ErrFull))
	c.want(c.send("disk full"))(452, "4.3.1", "Insufficient system storage", "not accepted")
	if evs, depth := f.stored(); len(evs) != 0 || depth != 0 {
		t.Errorf("after a full disk: %d trace events, queue depth %d; want nothing", len(evs), depth)
	}
}

func TestDirectoryFailureAtAuth(t *testing.T) {
	f := newFixture(t, func(d fullDirectory) fullDirectory { return brokenDirectory{fullDirectory: d, account: true} })
	c := f.dial()
	code, text := c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+appAddr+"\x00"+appPW)))
	// A temporary failure, not 535: the client must retry, not give up on
	// its credentials.
	c.want(code, text)(454, "4.7.0", "Temporary authentication failure")
	c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(530, "5.7.57")
}

func TestDirectoryFailureAtRcpt(t *testing.T) {
	for _, broken := range []brokenDirectory{{domain: true}, {lookup: true}} {
		f := newFixture(t, func(d fullDirectory) fullDirectory { broken.fullDirectory = d; return broken })
		c := f.dial()
		c.signIn()
		c.want(c.cmd("MAIL FROM:<"+appAddr+">"))(250, "2.0.0")
		c.want(c.cmd("RCPT TO:<"+alice+">"))(451, "4.3.0", "Temporary storage failure")
	}
}
