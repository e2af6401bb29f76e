package server_test

// Access policy over SMTP: tenant settings, authentication policies,
// Conditional Access, conversion to a mailbox, the retirement of basic
// auth, allowed networks and smart lockout, each set through the store and
// then met by a real sign-in (spec sections 1, 2 and 5).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"hve/internal/directory"
)

// settings changes the default tenant's settings.
func (n *testNode) settings(change func(*directory.Settings)) {
	n.t.Helper()
	ten, err := n.srv.Store.Tenant(n.t.Context(), n.tenant.ID)
	if err != nil {
		n.t.Fatal(err)
	}
	change(&ten.Settings)
	if _, err := n.srv.Store.UpdateTenantSettings(n.t.Context(), ten.ID, ten.Settings); err != nil {
		n.t.Fatalf("UpdateTenantSettings: %v", err)
	}
}

// updateAccount changes the HVE account with addr.
func (n *testNode) updateAccount(addr string, change func(*directory.Account)) directory.Account {
	n.t.Helper()
	acc, err := n.srv.Store.AccountByAddress(n.t.Context(), addr)
	if err != nil {
		n.t.Fatal(err)
	}
	change(&acc)
	acc, err = n.srv.Store.UpdateAccount(n.t.Context(), acc)
	if err != nil {
		n.t.Fatalf("UpdateAccount: %v", err)
	}
	return acc
}

func TestSecurityDefaults(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.settings(func(s *directory.Settings) { s.SecurityDefaults = true })
	for _, tc := range []struct {
		c        *smtpClient
		user, pw string
	}{{n.dialTLS(), appAddr, appPW}, {n.dialClientTLS(), sharedAddr, sharedPW}} {
		code, text := tc.c.authPlain(tc.user, tc.pw)
		wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful, the organization configuration does not allow this authentication request")
		code, text = tc.c.authLogin(tc.user, tc.pw)
		wantReply(t, code, text, 535, "5.7.139", "organization configuration")
	}
	// OAuth is not basic auth: it still works.
	c := n.dialTLS()
	code, text := c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 235, "2.0.0")
}

func TestAuthPolicyBlocksBasic(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	ctx := t.Context()
	for _, p := range []directory.AuthPolicy{{Name: "no-basic"}, {Name: "allow-basic", AllowBasicAuthSMTP: true}} {
		p.TenantID = n.tenant.ID
		if _, err := n.srv.Store.CreateAuthPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// The tenant default blocks basic SMTP.
	n.settings(func(s *directory.Settings) { s.DefaultAuthPolicy = "no-basic" })
	c := n.dialTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful, basic auth is blocked")
	// The account's own policy wins over the default.
	n.updateAccount(appAddr, func(a *directory.Account) { a.AuthPolicy = "allow-basic" })
	code, text = c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestClientSMTPAuthDisabled(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.settings(func(s *directory.Settings) { s.ClientSMTPAuthDisabled = true })
	c := n.dialClientTLS()
	code, text := c.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant")
	// It closes the standard endpoint only, and basic auth only.
	code, text = c.authOAUTHBEARER(sharedAddr, n.token(mailerApp))
	wantReply(t, code, text, 235, "2.0.0")
	h := n.dialTLS()
	code, text = h.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestConditionalAccessBlocks(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	const policy = "Block legacy for apps"
	if _, err := n.srv.Store.CreateCAPolicy(t.Context(), directory.CAPolicy{TenantID: n.tenant.ID, Name: policy,
		State: directory.CAOn, Grant: directory.GrantBlock, ClientApps: []directory.ClientApp{directory.Legacy},
		IncludeUsers: []string{appAddr}}); err != nil {
		t.Fatal(err)
	}
	c := n.dialTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully",
		"AADSTS53003: Access has been blocked by Conditional Access policies")
	if strings.Contains(text, policy) {
		t.Errorf("reply %q names the policy; only the log and trace may", text)
	}
	// The policy targets legacy clients: OAuth gets through.
	code, text = c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 235, "2.0.0")
}

func TestConvertedToMailbox(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	acc, err := n.srv.Store.AccountByAddress(t.Context(), appAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Store.ConvertAccountToMailbox(t.Context(), n.tenant.ID, acc.ID); err != nil {
		t.Fatal(err)
	}
	c := n.dialTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 451, "4.7.0", "Temporary server error. Please try again later AUTH2003")
	// As a mailbox, it now sends through the standard client endpoint.
	m := n.dialClientTLS()
	code, text = m.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestBasicAuthRetired(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	sunset := time.Now().Add(-48 * time.Hour).UTC()
	n.settings(func(s *directory.Settings) { s.HVEBasicAuth.SunsetAt = sunset })
	c := n.dialTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 535, "5.7.139", "basic authentication on this endpoint was retired on "+sunset.Format("2006-01-02"), "AUTH XOAUTH2")
	// Per endpoint: the standard endpoint still takes basic auth.
	m := n.dialClientTLS()
	code, text = m.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 235, "2.0.0")
}

func TestBasicAuthPhasingOut(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	// A window that has ended without a sunset date refuses every basic
	// sign-in (100%): deterministic, unlike a window in progress.
	start, end := time.Now().Add(-30*24*time.Hour).UTC(), time.Now().Add(-time.Hour).UTC()
	n.settings(func(s *directory.Settings) {
		s.ClientBasicAuth.RampStart, s.ClientBasicAuth.RampEnd = start, end
	})
	c := n.dialClientTLS()
	code, text := c.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 535, "5.7.139", "basic authentication on this endpoint is being retired",
		"100% of sign-ins refused now, all from "+end.Format("2006-01-02"), "move to OAuth")
}

func TestNetworkNotAllowed(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	n.updateAccount(appAddr, func(a *directory.Account) { a.AllowedNetworks = []string{"10.0.0.0/8", "2001:db8::/32"} })
	c := n.dialTLS()
	code, text := c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 535, "5.7.139", "Authentication unsuccessful, this account may not sign in from this network")
	code, text = c.authXOAUTH2(appAddr, n.token(mailerApp))
	wantReply(t, code, text, 535, "5.7.139", "may not sign in from this network")
	n.updateAccount(appAddr, func(a *directory.Account) { a.AllowedNetworks = []string{"10.0.0.0/8", "127.0.0.0/8"} })
	code, text = c.authPlain(appAddr, appPW)
	wantReply(t, code, text, 235, "2.0.0")
}

// TestSmartLockout: after repeated wrong passwords from a source the
// account has never signed in from, even the right password is refused,
// with the same reply as a wrong one (a lockout tells an attacker
// nothing); the log says why.
func TestSmartLockout(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	c := n.dialTLS()
	for i := range 10 {
		code, text := c.authPlain(appAddr, fmt.Sprintf("guess-%d", i))
		wantReply(t, code, text, 535, "5.7.3")
	}
	code, text := c.authPlain(appAddr, appPW)
	if line := fmt.Sprintf("%d %s", code, text); line != "535 5.7.3 Authentication unsuccessful" {
		t.Errorf("right password while locked out: %q, want the reply of a wrong password", line)
	}
	// Other identities are not locked.
	m := n.dialClientTLS()
	code, text = m.authPlain(sharedAddr, sharedPW)
	wantReply(t, code, text, 235, "2.0.0")
}
