package server_test

// Helpers for the SMTP integration tests: a real hve node started in-process
// on loopback ports with a small seeded directory, and a raw SMTP client that
// shows every reply exactly as the server sent it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/oauth"
	"hve/internal/password"
	"hve/internal/server"
	"hve/internal/store"
	"hve/internal/trace"
)

// The seeded organisation. The default tenant owns contoso.test
// (authoritative) and relay.test (internal-relay); a second tenant owns
// fabrikam.test.
const (
	hostname = "hve.test"

	domain      = "contoso.test"
	relayDomain = "relay.test"
	otherDomain = "fabrikam.test"

	appAddr    = "app@contoso.test" // the HVE account the tests sign in with
	appPW      = "app-password"
	appAlias   = "alerts@contoso.test"
	appDisplay = "App Notifications"
	appReplyTo = "helpdesk@contoso.test"

	offAddr = "off@contoso.test" // a disabled HVE account
	offPW   = "off-password"

	sharedAddr  = "shared@contoso.test" // a mailbox that has a password
	sharedPW    = "mailbox-password"
	sharedAlias = "sales@contoso.test"
	sharedName  = "Shared"

	teamAddr = "team@contoso.test" // a group of alice and bob

	erinAddr = "erin@fabrikam.test" // a mailbox of the other tenant

	maxBytes = 10485760
)

var people = []string{"alice", "bob", "carol", "dave"}

// The seeded app registrations (OAuth clients) of the default tenant. All
// share one client secret: hashing is slow.
const (
	mailerApp = "11111111-1111-4111-8111-111111111111" // Mail.Send, allowed on app@
	otherApp  = "22222222-2222-4222-8222-222222222222" // Mail.Send, not allowed on app@
	noSendApp = "33333333-3333-4333-8333-333333333333" // no Mail.Send, allowed on app@
)

// appSecret is the client secret of every seeded app, and its hash.
var appSecret = sync.OnceValues(func() (string, string) {
	secret, _, err := oauth.NewSecret()
	if err != nil {
		panic(err)
	}
	h, err := oauth.HashSecret(secret)
	if err != nil {
		panic(err)
	}
	return secret, h
})

// hashes are computed once: argon2id is deliberately slow.
var hashes = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, pw := range []string{appPW, offPW, sharedPW} {
		h, err := password.Hash(pw)
		if err != nil {
			panic(err)
		}
		m[pw] = h
	}
	return m
})

// testNode is one running hve node with the seeded directory.
type testNode struct {
	t      *testing.T
	srv    *server.Server
	tenant directory.Tenant // the default tenant
	other  directory.Tenant
}

// startNode starts a node on loopback ports in a fresh data directory and
// seeds the directory. The node's log is shown only if the test fails.
func startNode(t *testing.T) *testNode {
	t.Helper()
	return startNodeWith(t, nil)
}

// startNodeWith is startNode with the configuration changed by change.
func startNodeWith(t *testing.T, change func(*config.Config)) *testNode {
	t.Helper()
	n := startUnseeded(t, change)
	n.seed()
	return n
}

// startUnseeded is startNodeWith without seeding the directory: for a
// node of a store that another node has seeded.
func startUnseeded(t *testing.T, change func(*config.Config)) *testNode {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Hostname = hostname
	cfg.SMTP.Addr = "127.0.0.1:0"
	cfg.Client.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	if change != nil {
		change(&cfg)
	}

	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })

	return &testNode{t: t, srv: srv}
}

func (n *testNode) seed() {
	t, st, ctx := n.t, n.srv.Store, context.Background()
	t.Helper()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seeding: %v", err)
		}
	}
	var err error
	n.tenant, err = st.TenantByName(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatalf("default tenant: %v", err)
	}
	tid := n.tenant.ID
	must(st.AddDomain(ctx, directory.Domain{TenantID: tid, Name: domain, Type: directory.Authoritative}))
	must(st.AddDomain(ctx, directory.Domain{TenantID: tid, Name: relayDomain, Type: directory.InternalRelay}))
	for _, p := range people {
		must(st.CreateMailbox(ctx, directory.Mailbox{TenantID: tid, Name: p, DisplayName: strings.ToUpper(p[:1]) + p[1:], Address: p + "@" + domain}))
	}
	must(st.CreateMailbox(ctx, directory.Mailbox{TenantID: tid, Name: "shared", DisplayName: sharedName, Address: sharedAddr,
		Aliases: []string{sharedAlias}, PasswordHash: hashes()[sharedPW]}))
	must(st.CreateAccount(ctx, directory.Account{TenantID: tid, Name: "app", DisplayName: appDisplay, Address: appAddr,
		Aliases: []string{appAlias}, ReplyTo: appReplyTo, Enabled: true, PasswordHash: hashes()[appPW],
		AllowedApps: []string{mailerApp, noSendApp}}))
	_, secretHash := appSecret()
	for _, app := range []directory.App{
		{Name: "Mailer", AppID: mailerApp, Permissions: []directory.Permission{directory.MailSend}},
		{Name: "Other", AppID: otherApp, Permissions: []directory.Permission{directory.MailSend}},
		{Name: "No Send", AppID: noSendApp},
	} {
		app.TenantID, app.ObjectID = tid, "obj-"+app.AppID
		app.Secrets = []directory.AppSecret{{Hint: "sec", Hash: secretHash, ExpiresAt: time.Now().Add(24 * time.Hour)}}
		must(st.CreateApp(ctx, app))
	}
	must(st.CreateAccount(ctx, directory.Account{TenantID: tid, Name: "off", DisplayName: "Disabled", Address: offAddr,
		Enabled: false, PasswordHash: hashes()[offPW]}))
	team, err := st.CreateGroup(ctx, directory.Group{TenantID: tid, Name: "Team", Address: teamAddr})
	must(team, err)
	must(nil, st.AddGroupMember(ctx, tid, team.ID, "alice@"+domain))
	must(nil, st.AddGroupMember(ctx, tid, team.ID, "bob@"+domain))

	n.other, err = st.CreateTenant(ctx, "fabrikam")
	must(n.other, err)
	must(st.AddDomain(ctx, directory.Domain{TenantID: n.other.ID, Name: otherDomain, Type: directory.Authoritative}))
	must(st.CreateMailbox(ctx, directory.Mailbox{TenantID: n.other.ID, Name: "erin", DisplayName: "Erin", Address: erinAddr}))
}

// group creates a group of the default tenant with the given members.
func (n *testNode) group(addr string, members ...string) directory.Group {
	n.t.Helper()
	ctx := context.Background()
	g, err := n.srv.Store.CreateGroup(ctx, directory.Group{TenantID: n.tenant.ID, Name: addr, Address: addr})
	if err != nil {
		n.t.Fatalf("creating group %s: %v", addr, err)
	}
	for _, m := range members {
		n.addMember(g, m)
	}
	return g
}

func (n *testNode) addMember(g directory.Group, member string) {
	n.t.Helper()
	if err := n.srv.Store.AddGroupMember(context.Background(), n.tenant.ID, g.ID, member); err != nil {
		n.t.Fatalf("adding %s to %s: %v", member, g.Address, err)
	}
}

// trace searches the default tenant's trace.
func (n *testNode) trace(q trace.Query) []trace.Event {
	n.t.Helper()
	q.TenantID = n.tenant.ID
	evs, err := n.srv.Store.SearchTrace(context.Background(), q)
	if err != nil {
		n.t.Fatalf("SearchTrace: %v", err)
	}
	return evs
}

// waitTrace polls the trace until done accepts the events found by q, and
// returns them. Submission refusals and deliveries are written
// asynchronously.
func (n *testNode) waitTrace(q trace.Query, what string, done func([]trace.Event) bool) []trace.Event {
	n.t.Helper()
	var evs []trace.Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs = n.trace(q)
		if done(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out waiting for trace: %s; have:\n%s", what, formatEvents(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailboxMessages lists what the mailbox with addr holds.
func (n *testNode) mailboxMessages(addr string) []store.MailboxMessage {
	n.t.Helper()
	ctx := context.Background()
	mb, err := n.srv.Store.MailboxByAddress(ctx, addr)
	if err != nil {
		n.t.Fatalf("mailbox %s: %v", addr, err)
	}
	msgs, err := n.srv.Store.MailboxMessages(ctx, mb.ID)
	if err != nil {
		n.t.Fatalf("messages of %s: %v", addr, err)
	}
	return msgs
}

// body returns the queued message as hve stored it.
func (n *testNode) body(queueID string) string {
	n.t.Helper()
	b, err := n.srv.Store.MessageBody(context.Background(), queueID)
	if err != nil {
		n.t.Fatalf("MessageBody(%s): %v", queueID, err)
	}
	return string(b)
}

func countEvents(evs []trace.Event, event string) int {
	n := 0
	for _, e := range evs {
		if e.Event == event {
			n++
		}
	}
	return n
}

func formatEvents(evs []trace.Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.Event + " " + e.Status + " rcpt=" + e.Recipient + " qid=" + e.QueueID + " : " + e.Detail + "\n")
	}
	return b.String()
}

// smtpClient speaks SMTP line by line, so that tests see each reply as sent.
type smtpClient struct {
	t        *testing.T
	conn     net.Conn
	tp       *textproto.Conn
	greeting string
}

// dial connects to the node's HVE endpoint and reads the greeting.
func (n *testNode) dial() *smtpClient {
	n.t.Helper()
	return n.dialAddr(n.srv.SMTPAddr)
}

// dialClient connects to the node's standard client endpoint.
func (n *testNode) dialClient() *smtpClient {
	n.t.Helper()
	if n.srv.ClientAddr == nil {
		n.t.Fatal("the standard client endpoint is not running")
	}
	return n.dialAddr(n.srv.ClientAddr)
}

// dialClientTLS is dialTLS on the standard client endpoint.
func (n *testNode) dialClientTLS() *smtpClient {
	n.t.Helper()
	c := n.dialClient()
	c.ehlo()
	c.startTLS()
	c.ehlo()
	return c
}

// signInClient returns a client signed in as the mailbox shared@ on the
// standard client endpoint.
func (n *testNode) signInClient() *smtpClient {
	n.t.Helper()
	c := n.dialClientTLS()
	c.ok(c.authPlain(sharedAddr, sharedPW))
	return c
}

func (n *testNode) dialAddr(addr net.Addr) *smtpClient {
	n.t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		n.t.Fatalf("dial: %v", err)
	}
	// No test should take this long; a hang fails instead of stalling.
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &smtpClient{t: n.t, conn: conn, tp: textproto.NewConn(conn)}
	n.t.Cleanup(func() { c.conn.Close() })
	code, text := c.read()
	if code != 220 {
		n.t.Fatalf("greeting: %d %s", code, text)
	}
	c.greeting = text
	return c
}

// dialTLS returns a client that has done EHLO, STARTTLS and EHLO again.
func (n *testNode) dialTLS() *smtpClient {
	n.t.Helper()
	c := n.dial()
	c.ehlo()
	c.startTLS()
	c.ehlo()
	return c
}

// signIn returns a client that has done EHLO, STARTTLS, EHLO and AUTH PLAIN
// as the seeded HVE account.
func (n *testNode) signIn() *smtpClient {
	n.t.Helper()
	c := n.dialTLS()
	c.ok(c.authPlain(appAddr, appPW))
	return c
}

// read reads one (possibly multi-line) reply. text holds its lines without
// the code, joined by "\n"; for one-line replies it starts with the
// enhanced status code.
func (c *smtpClient) read() (code int, text string) {
	c.t.Helper()
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, text
}

// cmd sends one command line and returns the reply.
func (c *smtpClient) cmd(line string) (int, string) {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("sending %q: %v", line, err)
	}
	return c.read()
}

// ok fails the test unless the reply is positive (2xx or 3xx).
func (c *smtpClient) ok(code int, text string) string {
	c.t.Helper()
	if code >= 400 {
		c.t.Fatalf("unexpected reply %d %s", code, text)
	}
	return text
}

func (c *smtpClient) ehlo() (int, string) {
	c.t.Helper()
	code, text := c.cmd("EHLO client.test")
	c.ok(code, text)
	return code, text
}

// startTLS upgrades the connection. The certificate is self-signed.
func (c *smtpClient) startTLS() {
	c.t.Helper()
	c.startTLSWith(&tls.Config{InsecureSkipVerify: true, ServerName: hostname})
}

func (c *smtpClient) startTLSWith(cfg *tls.Config) {
	c.t.Helper()
	if err := c.tryStartTLS(cfg); err != nil {
		c.t.Fatalf("STARTTLS: %v", err)
	}
}

func (c *smtpClient) tryStartTLS(cfg *tls.Config) error {
	c.t.Helper()
	code, text := c.cmd("STARTTLS")
	if code != 220 {
		c.t.Fatalf("STARTTLS: %d %s", code, text)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
	return nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// authPlain signs in with AUTH PLAIN and an initial response.
func (c *smtpClient) authPlain(user, pw string) (int, string) {
	c.t.Helper()
	return c.cmd("AUTH PLAIN " + b64("\x00"+user+"\x00"+pw))
}

// authLogin signs in with AUTH LOGIN, answering the server's challenges.
func (c *smtpClient) authLogin(user, pw string) (int, string) {
	c.t.Helper()
	code, text := c.cmd("AUTH LOGIN")
	if code != 334 {
		return code, text
	}
	if ch, _ := base64.StdEncoding.DecodeString(text); string(ch) != "Username:" {
		c.t.Errorf("AUTH LOGIN first challenge = %q, want Username:", ch)
	}
	code, text = c.cmd(b64(user))
	if code != 334 {
		return code, text
	}
	if ch, _ := base64.StdEncoding.DecodeString(text); string(ch) != "Password:" {
		c.t.Errorf("AUTH LOGIN second challenge = %q, want Password:", ch)
	}
	return c.cmd(b64(pw))
}

// authXOAUTH2 signs in with AUTH XOAUTH2 and an initial response.
func (c *smtpClient) authXOAUTH2(user, token string) (int, string) {
	c.t.Helper()
	return c.cmd("AUTH XOAUTH2 " + b64("user="+user+"\x01auth=Bearer "+token+"\x01\x01"))
}

// authOAUTHBEARER signs in with AUTH OAUTHBEARER (RFC 7628) and an initial
// response.
func (c *smtpClient) authOAUTHBEARER(user, token string) (int, string) {
	c.t.Helper()
	return c.cmd("AUTH OAUTHBEARER " + b64("n,a="+user+",\x01host="+hostname+"\x01port=587\x01auth=Bearer "+token+"\x01\x01"))
}

// expectClosed fails the test unless the server has closed the connection
// (after the replies already read).
func (c *smtpClient) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := c.tp.ReadLine(); err == nil {
		c.t.Errorf("read %q, want the connection closed", line)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Errorf("connection still open")
	}
}

// token gets an access token for a seeded app from the node's token
// endpoint (POST /oauth2/token on the admin listener), as an application
// does: client-credentials grant.
func (n *testNode) token(appID string) string {
	n.t.Helper()
	secret, _ := appSecret()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret},
		"scope": {"https://outlook.office365.com/.default"}}
	resp, err := http.PostForm("http://"+n.srv.AdminAddr.String()+"/oauth2/token", form)
	if err != nil {
		n.t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" || body.TokenType != "Bearer" {
		n.t.Fatalf("token endpoint answered %d %s (%v)", resp.StatusCode, raw, err)
	}
	return body.AccessToken
}

// data sends DATA and the message (LF or CRLF line ends; dot-stuffed here).
func (c *smtpClient) data(msg string) (int, string) {
	c.t.Helper()
	code, text := c.cmd("DATA")
	if code != 354 {
		return code, text
	}
	w := c.tp.DotWriter()
	if _, err := io.WriteString(w, msg); err != nil {
		c.t.Fatalf("writing message: %v", err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatalf("ending message: %v", err)
	}
	return c.read()
}

// dataRaw sends DATA and content exactly as given (it must end in CRLF and
// need no dot-stuffing), then the end-of-data line.
func (c *smtpClient) dataRaw(content []byte) (int, string) {
	c.t.Helper()
	code, text := c.cmd("DATA")
	if code != 354 {
		return code, text
	}
	c.tp.W.Write(content)
	c.tp.W.WriteString(".\r\n")
	if err := c.tp.W.Flush(); err != nil {
		c.t.Fatalf("writing message: %v", err)
	}
	return c.read()
}

// envelope sends MAIL FROM and RCPT TO for each recipient; every one must
// be accepted.
func (c *smtpClient) envelope(from string, rcpts ...string) {
	c.t.Helper()
	c.ok(c.cmd("MAIL FROM:<" + from + ">"))
	for _, r := range rcpts {
		c.ok(c.cmd("RCPT TO:<" + r + ">"))
	}
}

// send runs a whole transaction and returns the reply to the message.
func (c *smtpClient) send(from string, rcpts []string, msg string) (int, string) {
	c.t.Helper()
	c.envelope(from, rcpts...)
	return c.data(msg)
}

// wantReply checks a reply's code, its enhanced code and that its text
// holds each of words.
func wantReply(t *testing.T, code int, text string, wantCode int, wantEnhanced string, words ...string) {
	t.Helper()
	if strings.ContainsAny(text, "\r\n") {
		t.Errorf("reply %d %q is not one line", code, text)
	}
	if code != wantCode || !strings.HasPrefix(text, wantEnhanced+" ") {
		t.Errorf("reply %d %s\nwant %d %s ...", code, text, wantCode, wantEnhanced)
		return
	}
	for _, w := range words {
		if !strings.Contains(text, w) {
			t.Errorf("reply %d %s\nwant it to contain %q", code, text, w)
		}
	}
}

var acceptedRe = regexp.MustCompile(`^2\.0\.0 OK <([0-9A-Z]{20})>$`)

// queueID checks the reply is "250 2.0.0 OK <id>" and returns the id.
func queueID(t *testing.T, code int, text string) string {
	t.Helper()
	m := acceptedRe.FindStringSubmatch(text)
	if code != 250 || m == nil {
		t.Fatalf("reply %d %s, want 250 2.0.0 OK <QUEUEID>", code, text)
	}
	return m[1]
}

// message builds a small message from header lines and a body.
func message(body string, headers ...string) string {
	return strings.Join(headers, "\r\n") + "\r\n\r\n" + body + "\r\n"
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
