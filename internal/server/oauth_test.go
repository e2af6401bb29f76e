package server_test

// OAuth sign-ins (XOAUTH2 and OAUTHBEARER) over SMTP with tokens from the
// node's own token endpoint, and the replies for malformed SASL data and
// for tokens that are not good enough (spec sections 2 and 5).

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEHLOAdvertisesMechanismsInOrder: after TLS, both endpoints offer
// exactly LOGIN, PLAIN, XOAUTH2 and OAUTHBEARER, in that order.
func TestEHLOAdvertisesMechanismsInOrder(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for name, c := range map[string]*smtpClient{"HVE": n.dial(), "client": n.dialClient()} {
		_, text := c.ehlo()
		if strings.Contains(text, "AUTH") {
			t.Errorf("%s endpoint: EHLO before TLS mentions AUTH:\n%s", name, text)
		}
		c.startTLS()
		_, text = c.ehlo()
		if !strings.Contains(text, "\nAUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\n") {
			t.Errorf("%s endpoint: EHLO after TLS:\n%s\nwant the line AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER", name, text)
		}
	}
}

func TestOAuthSignInSucceeds(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	token := n.token(mailerApp)
	xoauth2 := b64("user=" + appAddr + "\x01auth=Bearer " + token + "\x01\x01")
	oauthbearer := b64("n,a=" + appAddr + ",\x01host=" + hostname + "\x01port=587\x01auth=Bearer " + token + "\x01\x01")
	for _, tc := range []struct {
		name string
		auth func(c *smtpClient) (int, string)
	}{
		{"XOAUTH2", func(c *smtpClient) (int, string) { return c.authXOAUTH2(appAddr, token) }},
		{"OAUTHBEARER", func(c *smtpClient) (int, string) { return c.authOAUTHBEARER(appAddr, token) }},
		{"XOAUTH2 after an empty challenge", func(c *smtpClient) (int, string) {
			code, text := c.cmd("AUTH XOAUTH2")
			if code != 334 || text != "" {
				t.Errorf("AUTH XOAUTH2 without data: %d %q, want 334 and an empty challenge", code, text)
			}
			return c.cmd(xoauth2)
		}},
		{"OAUTHBEARER after an empty challenge", func(c *smtpClient) (int, string) {
			code, text := c.cmd("AUTH OAUTHBEARER")
			if code != 334 || text != "" {
				t.Errorf("AUTH OAUTHBEARER without data: %d %q, want 334 and an empty challenge", code, text)
			}
			return c.cmd(oauthbearer)
		}},
		{"lower-case mechanism", func(c *smtpClient) (int, string) { return c.cmd("auth xoauth2 " + xoauth2) }},
		{"user in another case", func(c *smtpClient) (int, string) { return c.authXOAUTH2("APP@contoso.test", token) }},
	} {
		c := n.dialTLS()
		code, text := tc.auth(c)
		if code != 235 || !strings.HasPrefix(text, "2.0.0 ") {
			t.Errorf("%s: %d %s, want 235 2.0.0", tc.name, code, text)
			continue
		}
		// Signed in with a token, the account sends as with a password.
		code, text = c.send(appAddr, []string{"alice@" + domain}, message("hi", "Subject: via "+tc.name))
		qid := queueID(t, code, text)
		if h := header(t, n.body(qid)); h.Get("Reply-To") != appReplyTo || !strings.Contains(h.Get("From"), appAddr) {
			t.Errorf("%s: message headers From %q, Reply-To %q", tc.name, h.Get("From"), h.Get("Reply-To"))
		}
	}
}

func TestOAuthMalformed(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		user := "user=" + appAddr + "\x01"
		if mech == "OAUTHBEARER" {
			user = "n,a=" + appAddr + ",\x01"
		}
		noUser := "auth=Bearer x\x01\x01"
		if mech == "OAUTHBEARER" {
			noUser = "n,,\x01auth=Bearer x\x01\x01"
		}
		for _, tc := range []struct {
			name, data string
			code       string
			words      string
		}{
			{"bad base64", "!!not base64!!", "5.5.120", "not valid base64"},
			{"no user", b64(noUser), "5.5.121", "no user"},
			{"no Bearer", b64(user + "auth=Basic eDp5\x01\x01"), "5.5.122", "no auth=Bearer"},
			{"no auth field", b64(user + "\x01"), "5.5.122", "no auth=Bearer"},
			{"no token", b64(user + "auth=Bearer \x01\x01"), "5.5.123", "token is empty"},
		} {
			code, text := c.cmd("AUTH " + mech + " " + tc.data)
			wantReply(t, code, text, 501, tc.code, "Malformed "+mech+" data", tc.words)
			// The same after an empty challenge.
			if code, text = c.cmd("AUTH " + mech); code != 334 {
				t.Fatalf("AUTH %s: %d %s", mech, code, text)
			}
			code, text = c.cmd(tc.data)
			wantReply(t, code, text, 501, tc.code, "Malformed "+mech+" data", tc.words)
		}
	}
	// Other mechanisms keep the protocol's reply for bad base64.
	code, text := c.cmd("AUTH PLAIN !!not base64!!")
	wantReply(t, code, text, 454, "4.7.0", "Invalid base64 data")
	// Before STARTTLS, the STARTTLS reply comes first, even for bad base64.
	plain := n.dial()
	plain.ehlo()
	code, text = plain.cmd("AUTH XOAUTH2 !!not base64!!")
	wantReply(t, code, text, 530, "5.7.0", "Must issue a STARTTLS command first")
	// The session is still usable.
	code, text = c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 235, "2.0.0")
}

func TestOAuthBadTokens(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	good := n.token(mailerApp)
	c := n.dialTLS()
	for _, tc := range []struct {
		name, user, token string
	}{
		{"not a token", appAddr, "not-a-token"},
		{"tampered signature", appAddr, good[:len(good)-4] + "AAAA"},
		{"unknown user", "nobody@" + domain, good},
	} {
		code, text := c.authXOAUTH2(tc.user, tc.token)
		if line := fmt.Sprintf("%d %s", code, text); line != "535 5.7.3 Authentication unsuccessful" {
			t.Errorf("%s: %q, want 535 5.7.3 Authentication unsuccessful", tc.name, line)
		}
	}
}

// TestTokenExpired: a token issued before the account's tokens-valid-from
// time (its tokens were revoked) is refused as expired; a new token works.
func TestTokenExpired(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	old := n.token(mailerApp)
	acc, err := n.srv.Store.AccountByAddress(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	acc.TokensValidFrom = time.Now().Add(2 * time.Second).Truncate(time.Second)
	if _, err := n.srv.Store.UpdateAccount(t.Context(), acc); err != nil {
		t.Fatal(err)
	}
	for _, auth := range []func(c *smtpClient, user, token string) (int, string){(*smtpClient).authXOAUTH2, (*smtpClient).authOAUTHBEARER} {
		c := n.dialTLS()
		code, text := auth(c, appAddr, old)
		wantReply(t, code, text, 535, "5.7.143", "Expired token")
		code, text = c.cmd("MAIL FROM:<" + appAddr + ">")
		wantReply(t, code, text, 530, "5.7.57")
	}
	time.Sleep(time.Until(acc.TokensValidFrom) + 10*time.Millisecond)
	c := n.dialTLS()
	code, text := c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 235, "2.0.0")
}

func TestTokenNoPermission(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	token := n.token(noSendApp)
	c := n.dialTLS()
	code, text := c.authXOAUTH2(appAddr, token)
	wantReply(t, code, text, 535, "5.7.144", "XOAUTH2 authentication failed. Invalid API permissions")
	code, text = c.authOAUTHBEARER(appAddr, token)
	wantReply(t, code, text, 535, "5.7.144", "Invalid API permissions")
}

func TestAppNotAllowed(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	token := n.token(otherApp)
	c := n.dialTLS()
	code, text := c.authXOAUTH2(appAddr, token)
	wantReply(t, code, text, 550, "5.7.240", "The application is not allowed for use with this High Volume Email account")
	// Allowing the app takes effect at the next sign-in.
	acc, err := n.srv.Store.AccountByAddress(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	acc.AllowedApps = append(acc.AllowedApps, otherApp)
	if _, err := n.srv.Store.UpdateAccount(t.Context(), acc); err != nil {
		t.Fatal(err)
	}
	code, text = c.authXOAUTH2(appAddr, token)
	wantReply(t, code, text, 235, "2.0.0")
}

// TestOAuthOnClientEndpoint: a mailbox signs in with a token of an app of
// its tenant (mailboxes have no allowed-apps list).
func TestOAuthOnClientEndpoint(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialClientTLS()
	code, text := c.authOAUTHBEARER(sharedAddr, n.token(otherApp))
	wantReply(t, code, text, 235, "2.0.0")
	code, text = c.send(sharedAddr, []string{"alice@" + domain}, message("hi", "Subject: mailbox via OAuth"))
	queueID(t, code, text)
}
