package server_test

// The standard client endpoint (spec section 3): mailboxes submit there
// with the ordinary mailbox limits and get a Sent Items copy. Also the
// revocation of open sessions, on both endpoints.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/trace"
)

func TestClientEndpointSendsWithSentItems(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signInClient()
	code, text := c.send(sharedAddr, []string{"alice@" + domain, teamAddr}, message("hello from a mailbox", "Subject: from shared"))
	qid := queueID(t, code, text)

	// The copy in Sent Items is made when the message is queued.
	var sent *store.MailboxMessage
	for _, m := range n.mailboxMessages(sharedAddr) {
		if m.QueueID == qid && m.Folder == store.FolderSentItems {
			sent = &m
		}
	}
	if sent == nil || sent.Subject != "from shared" {
		t.Fatalf("Sent Items of %s: %+v, want the message %s", sharedAddr, n.mailboxMessages(sharedAddr), qid)
	}
	// A mailbox has no reply-to; its display name makes the From.
	h := header(t, n.body(qid))
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != sharedName || from[0].Address != sharedAddr {
		t.Errorf("From %q, want %s <%s>", h.Get("From"), sharedName, sharedAddr)
	}
	if h.Get("Reply-To") != "" {
		t.Errorf("Reply-To %q added to a mailbox's message", h.Get("Reply-To"))
	}
	// Delivered like any other message, the group expanded.
	n.waitTrace(trace.Query{QueueID: qid}, "delivery", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventDelivered) == 2
	})
	for _, p := range []string{"alice", "bob"} {
		if msgs := n.mailboxMessages(p + "@" + domain); len(msgs) != 1 || msgs[0].Folder != store.FolderInbox {
			t.Errorf("%s holds %+v, want one copy in the Inbox", p, msgs)
		}
	}
	// The HVE endpoint keeps no Sent Items (its accounts have no mailbox).
	hc := n.signIn()
	code, text = hc.send(appAddr, []string{sharedAddr}, message("to shared", "Subject: from the app"))
	hq := queueID(t, code, text)
	for _, m := range n.mailboxMessages(sharedAddr) {
		if m.QueueID == hq && m.Folder == store.FolderSentItems {
			t.Errorf("an HVE account's message is in a Sent Items folder: %+v", m)
		}
	}
}

func TestClientSenderMustBeTheMailbox(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signInClient()
	for _, from := range []string{"alice@" + domain, appAddr, ""} {
		code, text := c.cmd("MAIL FROM:<" + from + ">")
		wantReply(t, code, text, 550, "5.7.60", "Client does not have permissions to send as this sender")
	}
	// The alias is the mailbox's too, in the envelope and the header.
	code, text := c.send(sharedAlias, []string{"alice@" + domain}, message("hi", "From: Sales <"+sharedAlias+">", "Subject: alias"))
	queueID(t, code, text)
	code, text = c.send(sharedAddr, []string{"alice@" + domain}, message("hi", "From: "+appAddr, "Subject: spoof"))
	wantReply(t, code, text, 554, "5.2.252", "SendAsDenied; "+sharedAddr+" not allowed to send as "+appAddr)
}

func TestAccountOnClientEndpoint(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialClientTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 535, "5.7.57", "Client not authenticated to send mail. Use the High Volume Email endpoint")
	code, text = c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 535, "5.7.57", "Use the High Volume Email endpoint")
	// A wrong password does not reveal that the address is an account.
	code, text = c.authPlain(appAddr, "wrong")
	if line := fmt.Sprintf("%d %s", code, text); line != "535 5.7.3 Authentication unsuccessful" {
		t.Errorf("account with a wrong password: %q", line)
	}
	code, text = c.cmd("MAIL FROM:<" + appAddr + ">")
	wantReply(t, code, text, 530, "5.7.57")
}

func TestMailboxRelayDenied(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signInClient()
	c.envelope(sharedAddr)
	for _, rcpt := range []string{"someone@example.com", erinAddr, "nobody@" + otherDomain} {
		code, text := c.cmd("RCPT TO:<" + rcpt + ">")
		wantReply(t, code, text, 550, "5.7.54", "Unable to relay recipient in non-accepted domain")
	}
	// Inside the organisation, the rules of the HVE endpoint apply.
	code, text := c.cmd("RCPT TO:<nobody@" + domain + ">")
	wantReply(t, code, text, 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound")
	code, text = c.cmd("RCPT TO:<" + appAddr + ">")
	wantReply(t, code, text, 550, "5.1.10")
	c.ok(c.cmd("RCPT TO:<somebody@" + relayDomain + ">"))
	n.waitTrace(trace.Query{Recipient: erinAddr, Status: trace.StatusRejected}, "the refused RCPT", func(evs []trace.Event) bool {
		return len(evs) == 1 && evs[0].Sender == sharedAddr && strings.HasPrefix(evs[0].Detail, "550 5.7.54")
	})
}

func TestClientRecipientLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signInClient()
	c.envelope(sharedAddr)
	// Pipelined: 500 distinct recipients, then the 501st.
	for i := 1; i <= 501; i++ {
		c.tp.PrintfLine("RCPT TO:<r%03d@%s>", i, relayDomain)
	}
	for i := 1; i <= 500; i++ {
		code, text := c.read()
		if code != 250 {
			t.Fatalf("RCPT %d: %d %s", i, code, text)
		}
	}
	code, text := c.read()
	wantReply(t, code, text, 452, "4.5.3", "Too many recipients", "at most 500 per message")
	c.ok(c.cmd("RSET"))
}

func TestClientConcurrency(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	var signedIn []*smtpClient
	for range 3 {
		signedIn = append(signedIn, n.signInClient())
	}
	c := n.dialClientTLS()
	code, text := c.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 432, "4.3.2", "sender thread limit exceeded", "at most 3 concurrent connections per mailbox")
	code, text = c.cmd("MAIL FROM:<" + sharedAddr + ">")
	wantReply(t, code, text, 530, "5.7.57")
	// The limit is per mailbox: the HVE endpoint and other identities are
	// not affected. A connection that ends gives its place back.
	n.signIn()
	c.ok(signedIn[0].cmd("QUIT"))
	signedIn[0].expectClosed()
	code, text = c.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestMailboxRecipientQuota(t *testing.T) {
	t.Parallel()
	n := startNodeWith(t, func(cfg *config.Config) { cfg.Client.RecipientsPerDay = 3 })
	c := n.signInClient()
	code, text := c.send(sharedAddr, []string{"alice@" + domain, "bob@" + domain}, message("1", "Subject: two"))
	queueID(t, code, text)
	c.envelope(sharedAddr, "carol@"+domain)
	code, text = c.cmd("RCPT TO:<dave@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Recipient limit of 3 per rolling 24 hours reached for "+sharedAddr)
	if !regexp.MustCompile(`capacity frees from \d{4}-\d\d-\d\d \d\d:\d\d UTC$`).MatchString(text) {
		t.Errorf("reply %q does not end with the time capacity frees", text)
	}
	// Counted on every connection of the mailbox; the message in progress
	// holds its recipient.
	other := n.signInClient()
	other.envelope(sharedAddr)
	code, text = other.cmd("RCPT TO:<dave@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3")
	code, text = c.data(message("3", "Subject: third"))
	queueID(t, code, text)
	n.waitTrace(trace.Query{Recipient: "dave@" + domain, Status: trace.StatusRejected}, "refusals", func(evs []trace.Event) bool {
		return len(evs) == 2 && strings.HasPrefix(evs[0].Detail, "452 4.5.3 Recipient limit")
	})
}

// TestClientPacing: the 31st message in a minute is accepted, its delivery
// paced (NotBefore), and delivered no earlier.
func TestClientPacing(t *testing.T) {
	t.Parallel()
	// 12 messages a minute rather than the default 30: a slow machine
	// has 5 seconds, not 2, to send past the burst before a slot returns.
	n := startNodeWith(t, func(c *config.Config) { c.Client.MessagesPerMinute = 12 })
	c := n.signInClient()
	var qids []string
	for i := range 13 {
		code, text := c.send(sharedAddr, []string{"alice@" + domain}, message("m", fmt.Sprintf("Subject: m%02d", i+1)))
		qids = append(qids, queueID(t, code, text))
	}
	received := func(qid string) []trace.Event {
		var out []trace.Event
		for _, e := range n.trace(trace.Query{QueueID: qid}) {
			if e.Event == trace.EventReceived {
				out = append(out, e)
			}
		}
		return out
	}
	for i, qid := range qids[:12] {
		if evs := received(qid); len(evs) != 1 || strings.Contains(evs[0].Detail, "paced") {
			t.Errorf("message %d: %s", i+1, formatEvents(evs))
		}
	}
	evs := received(qids[12])
	m := regexp.MustCompile(`paced: delivery from (\S+ \S+) UTC \(over 12 messages a minute\)`).FindStringSubmatch(evs[0].Detail)
	if len(evs) != 1 || m == nil {
		t.Fatalf("13th message: %s\nwant a paced delivery", formatEvents(evs))
	}
	notBefore, err := time.Parse("2006-01-02 15:04:05", m[1])
	if err != nil || notBefore.Before(evs[0].Time.Truncate(time.Second)) || notBefore.After(evs[0].Time.Add(6*time.Second)) {
		t.Fatalf("paced until %q (%v), received %v", m[1], err, evs[0].Time)
	}
	evs = n.waitTrace(trace.Query{QueueID: qids[12]}, "the paced delivery", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventDelivered) == 1
	})
	for _, e := range evs {
		if e.Event == trace.EventDelivered && e.Time.Before(notBefore) {
			t.Errorf("paced message delivered at %v, before %v", e.Time, notBefore)
		}
	}
}

// TestSessionRevoked: an admin ending an identity's sessions closes each
// open one with 421 4.7.0, on either endpoint, and no other.
func TestSessionRevoked(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ctx := context.Background()
	acc, err := n.srv.Store.AccountByAddress(ctx, appAddr)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := n.srv.Store.MailboxByAddress(ctx, sharedAddr)
	if err != nil {
		t.Fatal(err)
	}
	app1, app2 := n.signIn(), n.signIn()
	app2.envelope(appAddr, "alice@"+domain) // in the middle of a transaction
	mbox := n.signInClient()
	notSignedIn := n.dialTLS()

	if got := n.srv.CloseSessions(n.other.ID, directory.KindAccount, acc.ID); got != 0 {
		t.Errorf("CloseSessions in another tenant = %d, want 0", got)
	}
	if got := n.srv.CloseSessions(n.tenant.ID, directory.KindAccount, acc.ID); got != 2 {
		t.Errorf("CloseSessions(account) = %d, want 2", got)
	}
	for _, c := range []*smtpClient{app1, app2} {
		code, text := c.read()
		wantReply(t, code, text, 421, "4.7.0", "Session revoked by the administrator; sign in again")
		c.expectClosed()
	}
	// The mailbox's session and the one not signed in go on.
	code, text := mbox.send(sharedAddr, []string{"alice@" + domain}, message("still here", "Subject: after"))
	queueID(t, code, text)
	c := notSignedIn
	c.ok(c.authPlain(appAddr, appPW))

	if got := n.srv.CloseSessions(n.tenant.ID, directory.KindMailbox, mb.ID); got != 1 {
		t.Errorf("CloseSessions(mailbox) = %d, want 1", got)
	}
	code, text = mbox.read()
	wantReply(t, code, text, 421, "4.7.0", "Session revoked")
	mbox.expectClosed()
	// Its connection slot is free again: three new sign-ins work.
	for range 3 {
		n.signInClient()
	}
}
