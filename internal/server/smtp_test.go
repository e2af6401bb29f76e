package server_test

// Integration tests of the HVE submission endpoint (spec sections 2, 4, 5):
// a real node, raw SMTP over a socket, every reply row of internal/reply
// that a client can provoke, and what happens to accepted messages.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"hve/internal/reply"
	"hve/internal/trace"
)

// TestEveryOwnReplyIsTested keeps this file in step with the reply table:
// a reply added to reply.Own needs a test that provokes it.
func TestEveryOwnReplyIsTested(t *testing.T) {
	tested := map[string]string{
		"must-starttls":                 "TestAuthBeforeSTARTTLS, TestMailBeforeSTARTTLS",
		"auth-failed":                   "TestAuthFailuresLookAlike",
		"mailbox-on-hve-endpoint":       "TestMailboxOnHVEEndpoint",
		"account-locked":                "TestDisabledAccountIsLocked",
		"auth-temporary-failure":        "smtpd.TestDirectoryFailureAtAuth",
		"auth-mechanism-unsupported":    "TestUnsupportedMechanism",
		"not-authenticated":             "TestMailWithoutAuth",
		"sender-denied":                 "TestMailFromMustBeTheAccount",
		"invalid-address":               "TestRcptInvalidAddress",
		"too-many-recipients":           "TestRecipientLimit",
		"external-recipient":            "TestRcptOutsideAcceptedDomains",
		"recipient-not-found":           "TestRcptNotFound",
		"message-too-large":             "TestSizeDeclaredInMail, TestSizeOfData, TestSizeOfBDAT",
		"malformed-header":              "TestMalformedHeader",
		"header-from-denied":            "TestHeaderFromMustBeTheAccount",
		"storage-unavailable":           "smtpd.TestStorageFailure, smtpd.TestDirectoryFailureAtRcpt",
		"storage-full":                  "smtpd.TestStorageFull",
		"storage-low":                   "TestStorageLowRefusesMail, smtpd.TestStorageLow",
		"accepted":                      "TestAcceptedNamesQueueID",
		"account-on-client-endpoint":    "TestAccountOnClientEndpoint",
		"converted-to-mailbox":          "TestConvertedToMailbox",
		"security-defaults":             "TestSecurityDefaults",
		"basic-auth-blocked":            "TestAuthPolicyBlocksBasic",
		"client-smtp-auth-disabled":     "TestClientSMTPAuthDisabled",
		"basic-auth-retired":            "TestBasicAuthRetired",
		"basic-auth-phasing-out":        "TestBasicAuthPhasingOut",
		"conditional-access-blocked":    "TestConditionalAccessBlocks",
		"network-not-allowed":           "TestNetworkNotAllowed",
		"token-expired":                 "TestTokenExpired",
		"token-no-permission":           "TestTokenNoPermission",
		"app-not-allowed":               "TestAppNotAllowed",
		"oauth-bad-base64":              "TestOAuthMalformed",
		"oauth-no-user":                 "TestOAuthMalformed",
		"oauth-no-bearer":               "TestOAuthMalformed",
		"oauth-no-token":                "TestOAuthMalformed",
		"session-revoked":               "TestSessionRevoked, smtpd.TestCloseSessions",
		"client-concurrency":            "TestClientConcurrency, smtpd.TestClientConcurrencyReleasedAtLogout",
		"mailbox-recipient-quota":       "TestMailboxRecipientQuota, smtpd.TestClientRecipientQuotaFreesAt",
		"mailbox-relay-denied":          "TestMailboxRelayDenied",
		"external-no-smarthost":         "TestExternalNoSmarthost, smtpd.TestExternalLimits",
		"external-recipient-quota":      "smtpd.TestExternalLimits",
		"external-rate-limit":           "TestExternalRateLimit, smtpd.TestExternalLimits",
		"tenant-daily-recipient-limit":  "TestTenantDailyRecipientLimit, smtpd.TestTenantDailyLimit",
		"account-daily-recipient-limit": "TestAccountDailyRecipientLimit, TestLimitRace, smtpd.TestAccountDailyLimitResetsAtMidnight",
	}
	for _, r := range reply.Own {
		if tested[r.Name] == "" {
			t.Errorf("reply %q (%d %v) has no test; add one and list it here", r.Name, r.Code, r.Enhanced)
		}
	}
}

func TestGreetingNamesHost(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dial()
	if !strings.HasPrefix(c.greeting, hostname+" ") || !strings.Contains(c.greeting, "ESMTP") {
		t.Errorf("greeting %q, want %q", c.greeting, hostname+" ESMTP ...")
	}
}

func ehloLines(text string) map[string]bool {
	lines := map[string]bool{}
	for _, l := range strings.Split(text, "\n")[1:] { // the first line is the greeting
		lines[strings.ToUpper(strings.TrimSpace(l))] = true
	}
	return lines
}

func TestEHLOBeforeTLSHidesAuth(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dial()
	_, text := c.ehlo()
	caps := ehloLines(text)
	for l := range caps {
		if strings.HasPrefix(l, "AUTH") {
			t.Errorf("EHLO before STARTTLS advertises %q; nothing must invite credentials in the clear", l)
		}
	}
	if !caps["STARTTLS"] {
		t.Errorf("EHLO before TLS does not offer STARTTLS:\n%s", text)
	}
}

func TestEHLOAfterTLSAdvertisesExtensions(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dial()
	c.ehlo()
	c.startTLS()
	_, text := c.ehlo()
	caps := ehloLines(text)
	for _, want := range []string{"SIZE 10485760", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "SMTPUTF8"} {
		if !caps[want] {
			t.Errorf("EHLO after TLS lacks %q:\n%s", want, text)
		}
	}
	if caps["STARTTLS"] {
		t.Errorf("EHLO after TLS still offers STARTTLS:\n%s", text)
	}
	var mechs map[string]bool
	for l := range caps {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "AUTH" {
			mechs = map[string]bool{}
			for _, m := range f[1:] {
				mechs[m] = true // already upper case: mechanism names are case-insensitive
			}
		}
	}
	if !mechs["PLAIN"] || !mechs["LOGIN"] {
		t.Errorf("EHLO after TLS advertises AUTH mechanisms %v, want PLAIN and LOGIN:\n%s", mechs, text)
	}
}

func TestTLSVersions(t *testing.T) {
	t.Parallel()
	n := startNode(t)

	old := n.dial()
	old.ehlo()
	err := old.tryStartTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded; the endpoint must accept TLS 1.2 and 1.3 only")
	}

	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := n.dial()
		c.ehlo()
		c.startTLSWith(&tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if st := c.conn.(*tls.Conn).ConnectionState(); st.Version != v {
			t.Errorf("negotiated %s, want %s", tls.VersionName(st.Version), tls.VersionName(v))
		}
		c.ehlo()
		c.ok(c.authPlain(appAddr, appPW))
	}
}

func TestAuthBeforeSTARTTLS(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dial()
	c.ehlo()
	// Even correct credentials are refused in the clear, with either mechanism.
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 530, "5.7.0", "Must issue a STARTTLS command first")
	code, text = c.cmd("AUTH LOGIN")
	wantReply(t, code, text, 530, "5.7.0", "Must issue a STARTTLS command first")

	// The session continues and can still upgrade and sign in.
	c.startTLS()
	c.ehlo()
	code, text = c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0", "Authentication succeeded")
}

func TestMailBeforeSTARTTLS(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dial()
	c.ehlo()
	code, text := c.cmd("MAIL FROM:<" + appAddr + ">")
	wantReply(t, code, text, 530, "5.7.0", "Must issue a STARTTLS command first")
}

func TestMailWithoutAuth(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()
	code, text := c.cmd("MAIL FROM:<" + appAddr + ">")
	wantReply(t, code, text, 530, "5.7.57", "Client not authenticated to send mail")
}

func TestAuthSucceeds(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	tlsClient := func() *smtpClient {
		c := n.dialTLS()
		return c
	}
	for _, tc := range []struct {
		name string
		auth func(c *smtpClient) (int, string)
	}{
		{"PLAIN", func(c *smtpClient) (int, string) { return c.authPlain(appAddr, appPW) }},
		{"LOGIN", func(c *smtpClient) (int, string) { return c.authLogin(appAddr, appPW) }},
		{"lower-case mechanism", func(c *smtpClient) (int, string) { return c.cmd("auth plain " + b64("\x00"+appAddr+"\x00"+appPW)) }},
		{"PLAIN without initial response", func(c *smtpClient) (int, string) {
			c.ok(c.cmd("AUTH PLAIN"))
			return c.cmd(b64("\x00" + appAddr + "\x00" + appPW))
		}},
		{"LOGIN with initial response", func(c *smtpClient) (int, string) {
			c.ok(c.cmd("AUTH LOGIN " + b64(appAddr)))
			return c.cmd(b64(appPW))
		}},
		{"PLAIN with the same authzid", func(c *smtpClient) (int, string) {
			return c.cmd("AUTH PLAIN " + b64(appAddr+"\x00"+appAddr+"\x00"+appPW))
		}},
		{"username in another case", func(c *smtpClient) (int, string) { return c.authPlain("App@Contoso.TEST", appPW) }},
	} {
		c := tlsClient()
		code, text := tc.auth(c)
		if code != 235 || !strings.HasPrefix(text, "2.0.0 ") {
			t.Errorf("%s: %d %s, want 235 2.0.0", tc.name, code, text)
			continue
		}
		// Signed in, the account can start a transaction.
		if code, text = c.cmd("MAIL FROM:<" + appAddr + ">"); code != 250 {
			t.Errorf("%s: MAIL after sign-in: %d %s", tc.name, code, text)
		}
	}
}

func TestAuthFailuresLookAlike(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()

	type attempt struct {
		name string
		do   func() (int, string)
	}
	plain := func(user, pw string) func() (int, string) {
		return func() (int, string) { return c.authPlain(user, pw) }
	}
	login := func(user, pw string) func() (int, string) {
		return func() (int, string) { return c.authLogin(user, pw) }
	}
	attempts := []attempt{
		{"wrong password", plain(appAddr, "not-the-password")},
		{"wrong password (LOGIN)", login(appAddr, "not-the-password")},
		{"empty password", plain(appAddr, "")},
		{"unknown account", plain("nobody@contoso.test", appPW)},
		{"unknown account (LOGIN)", login("nobody@contoso.test", appPW)},
		{"unknown domain", plain("app@elsewhere.example", appPW)},
		{"username not an address", plain("app", appPW)},
		{"username not an address (LOGIN)", login("not an address", appPW)},
		{"alias as username", plain(appAlias, appPW)},
		{"mailbox, wrong password", plain(sharedAddr, "not-the-password")},
		{"mailbox without password", plain("alice@"+domain, "")},
		{"disabled account, wrong password", plain(offAddr, "not-the-password")},
		{"group address", plain(teamAddr, appPW)},
		{"PLAIN authzid of another identity", func() (int, string) {
			return c.cmd("AUTH PLAIN " + b64("alice@"+domain+"\x00"+appAddr+"\x00"+appPW))
		}},
	}
	var first string
	for _, a := range attempts {
		code, text := a.do()
		wantReply(t, code, text, 535, "5.7.3", "Authentication unsuccessful")
		line := fmt.Sprintf("%d %s", code, text)
		if first == "" {
			first = line
		} else if line != first {
			t.Errorf("%s: reply %q differs from %q; failed sign-ins must not tell which part was wrong", a.name, line, first)
		}
	}
	if first != "535 5.7.3 Authentication unsuccessful" {
		t.Errorf("failed sign-in reply %q, want exactly %q", first, "535 5.7.3 Authentication unsuccessful")
	}
	// After failures, the right credentials still work on the same session.
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestMailboxOnHVEEndpoint(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for _, auth := range []func(c *smtpClient, user, pw string) (int, string){(*smtpClient).authPlain, (*smtpClient).authLogin} {
		c := n.dialTLS()
		code, text := auth(c, sharedAddr, sharedPW)
		wantReply(t, code, text, 535, "5.7.3", "Authentication unsuccessful", "High Volume Email accounts only")
		// A wrong password does not reveal that the address is a mailbox.
		code, text = auth(c, sharedAddr, "wrong")
		if line := fmt.Sprintf("%d %s", code, text); line != "535 5.7.3 Authentication unsuccessful" {
			t.Errorf("mailbox with a wrong password: %q, want the plain 535 5.7.3 Authentication unsuccessful", line)
		}
		// Not signed in.
		code, text = c.cmd("MAIL FROM:<" + sharedAddr + ">")
		wantReply(t, code, text, 530, "5.7.57")
	}
}

func TestDisabledAccountIsLocked(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()
	code, text := c.authPlain(offAddr, offPW)
	wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful", "account locked")
	code, text = c.authLogin(offAddr, offPW)
	wantReply(t, code, text, 535, "5.7.139", "account locked")
	code, text = c.cmd("MAIL FROM:<" + offAddr + ">")
	wantReply(t, code, text, 530, "5.7.57")
}

func TestUnsupportedMechanism(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()
	for _, mech := range []string{"CRAM-MD5", "cram-md5", "DIGEST-MD5", "NTLM"} {
		code, text := c.cmd("AUTH " + mech)
		wantReply(t, code, text, 504, "5.7.4", "Unsupported authentication mechanism")
	}
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestMailFromMustBeTheAccount(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	for _, from := range []string{"alice@" + domain, offAddr, "app@elsewhere.example", erinAddr, ""} {
		code, text := c.cmd("MAIL FROM:<" + from + ">")
		wantReply(t, code, text, 550, "5.7.60", "Client does not have permissions to send as this sender")
	}
	for _, from := range []string{appAddr, appAlias, "App@Contoso.Test", strings.ToUpper(appAlias)} {
		code, text := c.cmd("MAIL FROM:<" + from + ">")
		wantReply(t, code, text, 250, "2.0.0")
		c.ok(c.cmd("RSET"))
	}
	// A message from the alias goes through end to end.
	code, text := c.send(appAlias, []string{"alice@" + domain}, message("hi", "From: "+appAlias, "Subject: from the alias"))
	queueID(t, code, text)

	n.waitTrace(trace.Query{Status: trace.StatusRejected}, "refusals of MAIL FROM", func(evs []trace.Event) bool {
		return len(evs) >= 5
	})
}

func TestRcptOutsideAcceptedDomains(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	c.envelope(appAddr)
	// An unknown domain, and another tenant's domain (with an existing
	// mailbox): tenants never see each other.
	for _, rcpt := range []string{"someone@example.com", erinAddr, "nobody@" + otherDomain, "alice@sub." + domain} {
		code, text := c.cmd("RCPT TO:<" + rcpt + ">")
		wantReply(t, code, text, 550, "5.5.105", "External sending is not supported for High Volume Email accounts")
	}
	n.waitTrace(trace.Query{Recipient: erinAddr, Status: trace.StatusRejected}, "rejected RCPT to another tenant", func(evs []trace.Event) bool {
		return len(evs) == 1 && strings.HasPrefix(evs[0].Detail, "550 5.5.105 External sending is not supported")
	})
	// The other tenant's trace sees nothing of it.
	evs, err := n.srv.Store.SearchTrace(t.Context(), trace.Query{TenantID: n.other.ID})
	if err != nil || len(evs) != 0 {
		t.Errorf("other tenant's trace: %v, %v; want nothing", evs, err)
	}
}

func TestRcptNotFound(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	c.envelope(appAddr)
	// Unknown in an authoritative domain; and HVE accounts (primary or
	// alias, enabled or not) cannot receive.
	for _, rcpt := range []string{"nobody@" + domain, appAddr, appAlias, offAddr} {
		code, text := c.cmd("RCPT TO:<" + rcpt + ">")
		wantReply(t, code, text, 550, "5.1.10", "RESOLVER.ADR.RecipientNotFound", "Recipient not found by SMTP address lookup")
	}
	// A refused RCPT leaves a Rejected trace event with the reply given.
	evs := n.waitTrace(trace.Query{Recipient: "nobody@" + domain}, "rejected RCPT", func(evs []trace.Event) bool { return len(evs) > 0 })
	e := evs[0]
	if e.Event != trace.EventRejected || e.Status != trace.StatusRejected || e.Sender != appAddr || e.ClientIP != "127.0.0.1" ||
		e.Detail != "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup" {
		t.Errorf("trace of the refused RCPT:\n%s", formatEvents(evs))
	}
	// The transaction goes on with the recipients that were accepted.
	c.ok(c.cmd("RCPT TO:<bob@" + domain + ">"))
	code, text := c.data(message("hi", "From: "+appAddr, "Subject: partly refused"))
	queueID(t, code, text)
}

func TestRcptInvalidAddress(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	c.envelope(appAddr)
	code, text := c.cmd("RCPT TO:<alice@contoso.test@contoso.test>")
	wantReply(t, code, text, 501, "5.1.3", "Bad address syntax", "alice@contoso.test@contoso.test")
}

func TestMailFromInvalidAddress(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	code, text := c.cmd("MAIL FROM:<app@contoso.test@contoso.test>")
	wantReply(t, code, text, 501, "5.1.3", "Bad address syntax", "app@contoso.test@contoso.test")
}

func TestInternalRelayUnknownRecipient(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	rcpt := "somebody@" + relayDomain
	c.envelope(appAddr)
	code, text := c.cmd("RCPT TO:<" + rcpt + ">")
	wantReply(t, code, text, 250, "2.0.0")
	code, text = c.data(message("hi", "From: "+appAddr, "Subject: to the relay domain"))
	qid := queueID(t, code, text)

	evs := n.waitTrace(trace.Query{QueueID: qid}, "a Failed event", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventFailed) > 0
	})
	for _, e := range evs {
		if e.Event == trace.EventFailed && (e.Recipient != rcpt || e.Status != trace.StatusFailed || !strings.Contains(e.Detail, "no next hop")) {
			t.Errorf("Failed event %+v, want recipient %s and a detail saying there is no next hop", e, rcpt)
		}
	}
}

func TestRecipientLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	c.envelope(appAddr)
	// A group is one recipient, however many members it has; a repeated
	// recipient counts once.
	rcpts := []string{teamAddr, teamAddr, "alice@" + domain, "ALICE@" + domain}
	for i := 1; len(rcpts) < 52; i++ {
		rcpts = append(rcpts, fmt.Sprintf("r%02d@%s", i, relayDomain))
	}
	// rcpts holds 50 distinct addresses, with two repeats.
	for _, r := range rcpts {
		code, text := c.cmd("RCPT TO:<" + r + ">")
		wantReply(t, code, text, 250, "2.0.0")
	}
	code, text := c.cmd("RCPT TO:<r51@" + relayDomain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Too many recipients", "50")
	code, text = c.cmd("RCPT TO:<bob@" + domain + ">")
	wantReply(t, code, text, 452, "4.5.3", "Too many recipients")
	// Repeating one already accepted is still fine at the limit.
	code, text = c.cmd("RCPT TO:<" + teamAddr + ">")
	wantReply(t, code, text, 250, "2.0.0")

	code, text = c.data(message("hi", "From: "+appAddr, "Subject: fifty"))
	qid := queueID(t, code, text)
	evs := n.trace(trace.Query{QueueID: qid})
	if got := countEvents(evs, trace.EventReceived); got != 50 {
		t.Errorf("%d Received events, want one per distinct envelope recipient (50)", got)
	}
	n.waitTrace(trace.Query{Recipient: "r51@" + relayDomain}, "rejected 51st RCPT", func(evs []trace.Event) bool {
		return len(evs) == 1 && strings.HasPrefix(evs[0].Detail, "452 4.5.3 Too many recipients")
	})

	// The limit is per message: the next transaction starts from zero.
	c.envelope(appAddr, "carol@"+domain)
	code, text = c.data(message("hi", "From: "+appAddr, "Subject: next"))
	queueID(t, code, text)
}

func TestSizeDeclaredInMail(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	code, text := c.cmd(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d", appAddr, maxBytes+1))
	wantReply(t, code, text, 552, "5.3.4", "Message size exceeds fixed maximum message size")
	code, text = c.cmd(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d", appAddr, maxBytes))
	wantReply(t, code, text, 250, "2.0.0")
	c.ok(c.cmd("RCPT TO:<alice@" + domain + ">"))
	code, text = c.data(message("small after all", "From: "+appAddr, "Subject: declared"))
	queueID(t, code, text)

	// The refusal, given by the protocol layer, is in trace all the same.
	n.waitTrace(trace.Query{Status: trace.StatusRejected}, "refusal of SIZE=", func(evs []trace.Event) bool {
		return len(evs) == 1 && evs[0].Sender == appAddr &&
			evs[0].Detail == "552 5.3.4 Message size exceeds fixed maximum message size"
	})
}

// bigMessage returns a message of exactly size bytes (size > 100), in CRLF
// lines that need no dot-stuffing.
func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: " + appAddr + "\r\nSubject: big\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for size-b.Len() > len(line)+1 {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("y", size-b.Len()-2) + "\r\n")
	return b.Bytes()
}

func TestSizeOfData(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()

	big := bigMessage(maxBytes + 1)
	if len(big) != maxBytes+1 {
		t.Fatalf("test message is %d bytes", len(big))
	}
	c.envelope(appAddr, "alice@"+domain)
	code, text := c.dataRaw(big)
	wantReply(t, code, text, 552, "5.3.4", "Message size exceeds fixed maximum message size")

	// The session stays usable: the next transaction works.
	code, text = c.send(appAddr, []string{"bob@" + domain}, message("small", "From: "+appAddr, "Subject: after the big one"))
	queueID(t, code, text)

	// A message of exactly the maximum size is accepted ("at most 10 MB").
	exact := bigMessage(maxBytes)
	if len(exact) != maxBytes || !bytes.HasSuffix(exact, []byte("\r\n")) {
		t.Fatalf("test message is %d bytes", len(exact))
	}
	c.envelope(appAddr, "alice@"+domain)
	code, text = c.dataRaw(exact)
	queueID(t, code, text)

	n.waitTrace(trace.Query{Status: trace.StatusRejected}, "the refusal of the big message", func(evs []trace.Event) bool {
		return len(evs) == 1 && strings.HasPrefix(evs[0].Detail, "552 5.3.4 Message size exceeds fixed maximum message size")
	})
}

func TestSizeOfBDAT(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	bdat := func(chunk []byte, last bool) (int, string) {
		t.Helper()
		cmd := fmt.Sprintf("BDAT %d", len(chunk))
		if last {
			cmd += " LAST"
		}
		c.tp.W.WriteString(cmd + "\r\n")
		c.tp.W.Write(chunk)
		if err := c.tp.W.Flush(); err != nil {
			t.Fatal(err)
		}
		return c.read()
	}

	// One chunk over the limit.
	c.envelope(appAddr, "alice@"+domain)
	code, text := bdat(bigMessage(maxBytes+1), true)
	wantReply(t, code, text, 552, "5.3.4", "Message size exceeds fixed maximum message size")

	// Chunks that add up to more than the limit.
	c.envelope(appAddr, "alice@"+domain)
	msg := bigMessage(maxBytes + 1)
	code, text = bdat(msg[:maxBytes/2], false)
	wantReply(t, code, text, 250, "2.0.0")
	code, text = bdat(msg[maxBytes/2:], true)
	wantReply(t, code, text, 552, "5.3.4", "Message size exceeds fixed maximum message size")

	// The session stays usable, with BDAT too.
	c.envelope(appAddr, "bob@"+domain)
	small := []byte(message("small", "From: "+appAddr, "Subject: chunked"))
	code, text = bdat(small[:10], false)
	wantReply(t, code, text, 250, "2.0.0")
	code, text = bdat(small[10:], true)
	qid := queueID(t, code, text)
	if body := n.body(qid); !strings.HasSuffix(body, "\r\n\r\nsmall\r\n") || !strings.Contains(body, "Subject: chunked\r\n") {
		t.Errorf("message sent with BDAT stored as:\n%s", body)
	}
}

func TestHeaderFromMustBeTheAccount(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	rcpt := []string{"alice@" + domain}

	for _, from := range []string{"bob@" + domain, "Bob <bob@" + domain + ">", appAddr + ", bob@" + domain} {
		code, text := c.send(appAddr, rcpt, message("hi", "From: "+from, "Subject: spoof"))
		wantReply(t, code, text, 554, "5.2.252", "SendAsDenied; "+appAddr+" not allowed to send as bob@"+domain)
	}
	// The envelope may use the primary address while the header uses an
	// alias and a display name, in any letter case.
	for _, from := range []string{appAlias, "\"Alerts\" <" + appAlias + ">", "Some App <" + appAddr + ">", "=?utf-8?q?J=C3=B6rg?= <APP@contoso.test>"} {
		code, text := c.send(appAddr, rcpt, message("hi", "From: "+from, "Subject: fine"))
		queueID(t, code, text)
	}
	n.waitTrace(trace.Query{Status: trace.StatusRejected}, "three SendAsDenied refusals", func(evs []trace.Event) bool {
		return len(evs) == 3 && strings.HasPrefix(evs[0].Detail, "554 5.2.252 SendAsDenied")
	})
}

func TestMalformedHeader(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	rcpt := []string{"alice@" + domain}
	for _, msg := range []string{
		"This line is not a header\r\nSubject: x\r\n\r\nbody\r\n",
		message("body", "From: <<not an address", "Subject: x"),
	} {
		code, text := c.send(appAddr, rcpt, msg)
		wantReply(t, code, text, 554, "5.6.0", "Message header could not be parsed")
	}
	code, text := c.send(appAddr, rcpt, message("body", "From: "+appAddr, "Subject: fine"))
	queueID(t, code, text)
}

func TestAcceptedNamesQueueID(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	code, text := c.send(appAddr, []string{"alice@" + domain, teamAddr}, message("hello", "From: "+appAddr, "Subject: traced"))
	qid := queueID(t, code, text)

	// The queue id finds the message in trace at once.
	evs := n.trace(trace.Query{QueueID: qid})
	if countEvents(evs, trace.EventReceived) != 2 {
		t.Fatalf("trace of %s:\n%s\nwant a Received event per recipient", qid, formatEvents(evs))
	}
	for _, e := range evs {
		if e.Sender != appAddr || e.Subject != "traced" || e.ClientIP != "127.0.0.1" || e.MessageID == "" || e.Size == 0 {
			t.Errorf("Received event %+v", e)
		}
	}
	if !strings.Contains(text, "<"+qid+">") {
		t.Errorf("reply %q does not show the queue id in angle brackets", text)
	}
}

// header parses the header of a stored message.
func header(t *testing.T, body string) mail.Header {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(body))
	if err != nil {
		t.Fatalf("stored message does not parse: %v\n%s", err, body)
	}
	return m.Header
}

func TestHeadersAdded(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	before := time.Now().Add(-time.Second)
	code, text := c.send(appAddr, []string{"alice@" + domain}, message("just a body", "Subject: bare"))
	qid := queueID(t, code, text)
	body := n.body(qid)
	h := header(t, body)

	rcv := h.Get("Received")
	for _, want := range []string{"from client.test", "[127.0.0.1]", "by " + hostname, "ESMTPSA", "id " + qid, "for <alice@contoso.test>"} {
		if !strings.Contains(rcv, want) {
			t.Errorf("Received: %q lacks %q", rcv, want)
		}
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@"+hostname+">") {
		t.Errorf("added Message-ID %q, want <...@%s>", id, hostname)
	}
	if d, err := h.Date(); err != nil || d.Before(before) || d.After(time.Now().Add(time.Second)) {
		t.Errorf("added Date %q (%v), want about now", h.Get("Date"), err)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != appDisplay || from[0].Address != appAddr {
		t.Errorf("added From %q, want %q <%s>", h.Get("From"), appDisplay, appAddr)
	}
	if got := h.Get("Reply-To"); got != appReplyTo {
		t.Errorf("Reply-To %q, want the account's %q", got, appReplyTo)
	}
	if !strings.HasSuffix(body, "\r\n\r\njust a body\r\n") {
		t.Errorf("body changed:\n%s", body)
	}
	// Trace carries the Message-ID hve made.
	evs := n.trace(trace.Query{QueueID: qid})
	if len(evs) == 0 || "<"+evs[0].MessageID+">" != h.Get("Message-Id") {
		t.Errorf("trace of %s:\n%s\nwant the Message-ID %s", qid, formatEvents(evs), h.Get("Message-Id"))
	}
}

func TestHeadersKept(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	const (
		msgID   = "<order-4711@shop.contoso.test>"
		date    = "Mon, 02 Jan 2006 15:04:05 +0000"
		replyTo = "orders@contoso.test"
		from    = "\"Shop\" <app@contoso.test>"
	)
	code, text := c.send(appAddr, []string{"alice@" + domain, "bob@" + domain}, message("body",
		"From: "+from, "Message-ID: "+msgID, "Date: "+date, "Reply-To: "+replyTo, "Subject: kept"))
	qid := queueID(t, code, text)
	body := n.body(qid)
	h := header(t, body)
	for name, want := range map[string]string{"Message-Id": msgID, "Date": date, "Reply-To": replyTo, "From": from} {
		if got := h[textproto.CanonicalMIMEHeaderKey(name)]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want only the client's %q", name, got, want)
		}
	}
	if rcv := h.Get("Received"); !strings.Contains(rcv, "by "+hostname) || strings.Contains(rcv, " for <") {
		t.Errorf("Received %q: want it to name %s and no single recipient", rcv, hostname)
	}
	evs := n.trace(trace.Query{QueueID: qid})
	if len(evs) == 0 || evs[0].MessageID != strings.Trim(msgID, "<>") {
		t.Errorf("trace message id of %s:\n%s", qid, formatEvents(evs))
	}
	// An account without a reply-to adds none. (Set through the store.)
	acc, err := n.srv.Store.AccountByAddress(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	acc.ReplyTo = ""
	if _, err := n.srv.Store.UpdateAccount(t.Context(), acc); err != nil {
		t.Fatal(err)
	}
	c2 := n.signIn()
	code, text = c2.send(appAddr, []string{"alice@" + domain}, message("body", "From: "+appAddr, "Subject: no reply-to"))
	if h := header(t, n.body(queueID(t, code, text))); h.Get("Reply-To") != "" {
		t.Errorf("Reply-To %q added for an account without one", h.Get("Reply-To"))
	}
}

func TestNestedGroupDelivery(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	alice, bob, carol, dave := "alice@"+domain, "bob@"+domain, "carol@"+domain, "dave@"+domain
	// outer -> middle -> inner -> middle (a loop); alice is reachable through
	// every group and directly; dave is in no group.
	outer := n.group("outer@"+domain, alice)
	middle := n.group("middle@"+domain, alice, bob)
	inner := n.group("inner@"+domain, alice, carol)
	n.addMember(outer, middle.Address)
	n.addMember(middle, inner.Address)
	n.addMember(inner, middle.Address)

	c := n.signIn()
	code, text := c.send(appAddr, []string{outer.Address, alice, inner.Address}, message("to everyone", "From: "+appAddr, "Subject: nested"))
	qid := queueID(t, code, text)

	evs := n.waitTrace(trace.Query{QueueID: qid}, "delivery", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventDelivered) >= 3
	})
	time.Sleep(100 * time.Millisecond) // nothing more may come
	evs = n.trace(trace.Query{QueueID: qid})

	if got := countEvents(evs, trace.EventReceived); got != 3 {
		t.Errorf("%d Received events, want 3 (one per envelope recipient)", got)
	}
	expanded := map[string]string{}
	delivered := map[string]int{}
	for _, e := range evs {
		switch e.Event {
		case trace.EventExpanded:
			expanded[e.Recipient] = e.Detail
		case trace.EventDelivered:
			delivered[e.Recipient]++
		case trace.EventFailed:
			t.Errorf("Failed event %+v", e)
		}
	}
	if len(expanded) != 2 || expanded[outer.Address] == "" || expanded[inner.Address] == "" {
		t.Errorf("Expanded events %v, want one for each group addressed", expanded)
	}
	if d := expanded[outer.Address]; !strings.Contains(d, "3 mailboxes") || !strings.Contains(d, middle.Address) || !strings.Contains(d, inner.Address) {
		t.Errorf("expansion of the outer group: %q, want 3 mailboxes through the nested groups", d)
	}
	for _, p := range []string{alice, bob, carol} {
		if delivered[p] != 1 {
			t.Errorf("%s: %d Delivered events, want 1", p, delivered[p])
		}
		if msgs := n.mailboxMessages(p); len(msgs) != 1 || msgs[0].QueueID != qid || msgs[0].Subject != "nested" {
			t.Errorf("%s holds %+v, want exactly one copy of %s", p, msgs, qid)
		}
	}
	if delivered[dave] != 0 || len(n.mailboxMessages(dave)) != 0 {
		t.Errorf("dave, in no group, got the message")
	}
	if t.Failed() {
		t.Logf("trace:\n%s", formatEvents(evs))
	}
}

// TestNothingHalfWritten: a refused message leaves nothing queued or
// delivered; the accepted one is delivered once and leaves the queue.
func TestNothingHalfWritten(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	code, text := c.send(appAddr, []string{"alice@" + domain}, message("hi", "From: bob@"+domain, "Subject: refused"))
	wantReply(t, code, text, 554, "5.2.252")
	code, text = c.send(appAddr, []string{"alice@" + domain}, message("hi", "From: "+appAddr, "Subject: accepted"))
	qid := queueID(t, code, text)
	n.waitTrace(trace.Query{QueueID: qid}, "delivery", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventDelivered) == 1
	})
	msgs := n.mailboxMessages("alice@" + domain)
	if len(msgs) != 1 || msgs[0].Subject != "accepted" {
		t.Errorf("alice holds %+v, want only the accepted message", msgs)
	}
	if d, err := n.srv.Store.QueueDepth(t.Context()); err != nil || d != 0 {
		t.Errorf("queue depth %d, %v; want 0", d, err)
	}
}

// TestDataTransparency checks that the message stored is the message the
// client meant: dot-stuffed lines lose their extra dot, bare CR and LF stay
// as they were, and long runs of line data (read by the fast path) arrive
// intact whatever the read size.
func TestDataTransparency(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.signIn()
	long := strings.Repeat("0123456789abcdef", 1000) // one 16000-byte line
	body := ".leading dot\r\n" +
		".\r\n" +
		"..two dots\r\n" +
		"a bare\rCR and a bare\nLF\r\n" +
		long + "\r\n" +
		"end.\r\n"
	var stuffed strings.Builder
	for _, line := range strings.SplitAfter(body, "\r\n") {
		if strings.HasPrefix(line, ".") {
			stuffed.WriteString(".")
		}
		stuffed.WriteString(line)
	}
	header := "From: " + appAddr + "\r\nSubject: transparency\r\n\r\n"
	c.envelope(appAddr, "alice@"+domain)
	code, text := c.dataRaw([]byte(header + stuffed.String()))
	qid := queueID(t, code, text)
	stored := n.body(qid)
	if !strings.HasSuffix(stored, "\r\n\r\n"+body) {
		t.Errorf("stored body differs from the body sent:\n%q\nwant suffix\n%q", stored[max(0, len(stored)-len(body)-50):], body)
	}
}
