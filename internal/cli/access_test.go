package cli_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"

	"hve/internal/directory"
)

// fail runs the command line and fails the test unless it exits with code
// and its standard error holds every one of want.
func (n *node) fail(t *testing.T, code int, want []string, args ...string) {
	t.Helper()
	r := n.run(t, "", args...)
	if r.code != code {
		t.Errorf("hve %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
		return
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("hve %s: stderr %q does not say %q", strings.Join(args, " "), r.stderr, w)
		}
	}
}

// okJSON runs the command line with --json and decodes its output.
func (n *node) okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := n.ok(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("hve %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// contains fails the test unless out holds every one of want.
func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s = %q, want it to contain %q", what, out, w)
		}
	}
}

// seedAccount creates contoso.test and the HVE account app@contoso.test
// with a known password.
func seedAccount(t *testing.T, n *node) {
	t.Helper()
	n.ok(t, "domain", "add", "contoso.test")
	if r := n.run(t, "app-password-1\n", "account", "create", "--name", "App", "--address", "app@contoso.test", "--password-stdin"); r.code != 0 {
		t.Fatalf("account create: %s", r.stderr)
	}
}

func TestTenantCommands(t *testing.T) {
	n := startNode(t)
	out := n.ok(t, "tenant", "show")
	contains(t, "tenant show", out, "FIELD", "security defaults", "default auth policy", "none", "HVE basic auth ramp")

	n.ok(t, "auth-policy", "create", "NoBasic")
	n.ok(t, "tenant", "set", "--security-defaults", "on", "--default-auth-policy", "NoBasic", "--client-smtp-auth-disabled", "on",
		"--hve-basic-auth-sunset", "2027-06-30", "--client-basic-auth-ramp", "2026-12-01..2027-03-01T12:00:00Z")
	var tn directory.Tenant
	n.okJSON(t, &tn, "tenant", "show")
	s := tn.Settings
	if !s.SecurityDefaults || s.DefaultAuthPolicy != "NoBasic" || !s.ClientSMTPAuthDisabled ||
		!s.HVEBasicAuth.SunsetAt.Equal(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)) ||
		!s.ClientBasicAuth.RampEnd.Equal(time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("settings after tenant set = %+v", s)
	}
	// Only the flags given change.
	n.ok(t, "tenant", "set", "--security-defaults", "off")
	n.okJSON(t, &tn, "tenant", "show")
	if tn.Settings.SecurityDefaults || tn.Settings.DefaultAuthPolicy != "NoBasic" || tn.Settings.HVEBasicAuth.SunsetAt.IsZero() {
		t.Errorf("tenant set --security-defaults off changed more: %+v", tn.Settings)
	}
	out = n.ok(t, "tenant", "set", "--default-auth-policy", "none", "--hve-basic-auth-sunset", "none", "--client-basic-auth-ramp", "none")
	contains(t, "tenant set output", out, "default auth policy", "client basic auth ramp")
	tn = directory.Tenant{} // omitted (cleared) times must not keep old values
	n.okJSON(t, &tn, "tenant", "show")
	if tn.Settings.DefaultAuthPolicy != "" || !tn.Settings.HVEBasicAuth.SunsetAt.IsZero() || !tn.Settings.ClientBasicAuth.RampStart.IsZero() {
		t.Errorf("after setting none: %+v", tn.Settings)
	}

	n.fail(t, 2, []string{"--hve-basic-auth-sunset", "2026-11-23"}, "tenant", "set", "--hve-basic-auth-sunset", "2026-13-45")
	n.fail(t, 2, []string{"START..END"}, "tenant", "set", "--hve-basic-auth-ramp", "2026-12-01")
	n.fail(t, 2, []string{"must be on or off"}, "tenant", "set", "--security-defaults", "maybe")
	n.fail(t, 2, []string{"nothing to change"}, "tenant", "set")
	n.fail(t, 1, []string{`authentication policy "Nope" does not exist`, "hve auth-policy list"}, "tenant", "set", "--default-auth-policy", "Nope")
	n.fail(t, 1, []string{"ramp_start", "is not before"}, "tenant", "set", "--hve-basic-auth-ramp", "2027-01-01..2026-01-01")
}

func TestAuthPolicyCommands(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	contains(t, "auth-policy create", n.ok(t, "auth-policy", "create", "AllowBasic", "--allow-basic-smtp"), "created authentication policy AllowBasic (basic SMTP allowed)")
	var p directory.AuthPolicy
	n.okJSON(t, &p, "auth-policy", "create", "Strict")
	if p.Name != "Strict" || p.AllowBasicAuthSMTP {
		t.Errorf("auth-policy create --json = %+v", p)
	}
	n.ok(t, "tenant", "set", "--default-auth-policy", "Strict")
	out := n.ok(t, "auth-policy", "list")
	contains(t, "auth-policy list", out, "NAME", "BASIC SMTP", "AllowBasic", "allowed", "Strict", "yes")
	var list []directory.AuthPolicy
	n.okJSON(t, &list, "auth-policy", "list")
	if len(list) != 2 {
		t.Errorf("auth-policy list --json = %+v", list)
	}
	contains(t, "auth-policy set", n.ok(t, "auth-policy", "set", "Strict", "--allow-basic-smtp", "true"), "Strict: basic SMTP allowed")
	n.fail(t, 2, []string{"--allow-basic-smtp must be true or false"}, "auth-policy", "set", "Strict", "--allow-basic-smtp", "perhaps")
	n.fail(t, 2, []string{"nothing to change"}, "auth-policy", "set", "Strict")
	n.fail(t, 1, []string{`authentication policy "Nope" does not exist`}, "auth-policy", "set", "Nope", "--allow-basic-smtp", "false")
	n.fail(t, 1, []string{"conflict"}, "auth-policy", "create", "Strict")
	n.fail(t, 1, []string{"reserved"}, "auth-policy", "create", "none")

	n.ok(t, "account", "set", "app@contoso.test", "--auth-policy", "AllowBasic")
	n.fail(t, 1, []string{`authentication policy "Nope" does not exist in tenant default`}, "account", "set", "app@contoso.test", "--auth-policy", "Nope")
	n.fail(t, 1, []string{"invalid"}, "auth-policy", "remove", "Strict")
	n.fail(t, 1, []string{"invalid"}, "auth-policy", "remove", "AllowBasic")
	n.ok(t, "account", "set", "app@contoso.test", "--auth-policy", "none")
	n.ok(t, "tenant", "set", "--default-auth-policy", "none")
	contains(t, "auth-policy remove", n.ok(t, "auth-policy", "remove", "Strict"), "removed authentication policy Strict")
	n.fail(t, 1, []string{"not_found"}, "auth-policy", "remove", "Strict")
}

// smtpSession signs in to the HVE endpoint with AUTH PLAIN or a.
func smtpSession(t *testing.T, addr string, auth smtp.Auth) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(auth); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	return c
}

// xoauth2 is SASL XOAUTH2, which net/smtp lacks.
type xoauth2 struct{ user, token string }

func (a xoauth2) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a xoauth2) Next(fromServer []byte, more bool) ([]byte, error) {
	if more {
		return nil, fmt.Errorf("server said %q", fromServer)
	}
	return nil, nil
}

// waitClosed waits until the server has closed the session.
func waitClosed(t *testing.T, c *smtp.Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Noop() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the session is still open")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAccountAccessCommands(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	hve := n.srv.SMTPAddr.String()

	out := n.ok(t, "account", "set", "app@contoso.test", "--allowed-networks", "127.0.0.1, 192.0.2.0/24,2001:db8::/32")
	contains(t, "account set output", out, "allowed networks", "127.0.0.1/32,192.0.2.0/24,2001:db8::/32")
	n.fail(t, 2, []string{"--allowed-networks", `network "10.0.0.300/8" is not a CIDR prefix`}, "account", "set", "app@contoso.test", "--allowed-networks", "10.0.0.300/8")
	n.fail(t, 2, []string{"neither a CIDR prefix nor an IP address"}, "account", "set", "app@contoso.test", "--allowed-networks", "localhost")

	// An open session is ended by --revoke-sessions.
	c := smtpSession(t, hve, smtp.PlainAuth("", "app@contoso.test", "app-password-1", "127.0.0.1"))
	out = n.ok(t, "account", "set", "app@contoso.test", "--revoke-sessions")
	contains(t, "account set --revoke-sessions", out, "revoked the tokens of app@contoso.test issued before", "closed 1 open session", "tokens valid from")
	waitClosed(t, c)
	var acc directory.Account
	n.okJSON(t, &acc, "account", "show", "app@contoso.test")
	if time.Since(acc.TokensValidFrom) > time.Minute || len(acc.AllowedNetworks) != 3 {
		t.Errorf("after revoke, account = %+v; want tokens_valid_from now", acc)
	}
	contains(t, "account show", n.ok(t, "account", "show", "app@contoso.test"), "auth policy", "none (the tenant's default)", "tokens valid from",
		acc.TokensValidFrom.UTC().Format(time.RFC3339), "allowed apps", "allowed networks")
	// --json prints the account alone, also with --revoke-sessions.
	n.okJSON(t, &acc, "account", "set", "app@contoso.test", "--revoke-sessions", "--display-name", "The App")
	if acc.DisplayName != "The App" {
		t.Errorf("account set --json = %+v", acc)
	}
	n.ok(t, "account", "set", "app@contoso.test", "--allowed-networks", "none")

	// Disabling an account ends its sessions too.
	c = smtpSession(t, hve, smtp.PlainAuth("", "app@contoso.test", "app-password-1", "127.0.0.1"))
	n.ok(t, "account", "set", "app@contoso.test", "--enabled", "false")
	waitClosed(t, c)
	n.ok(t, "account", "set", "app@contoso.test", "--enabled", "true")

	// Converting to a mailbox ends the sessions and keeps the address.
	c = smtpSession(t, hve, smtp.PlainAuth("", "app@contoso.test", "app-password-1", "127.0.0.1"))
	out = n.ok(t, "account", "convert-to-mailbox", "app@contoso.test")
	contains(t, "convert-to-mailbox", out, "converted app@contoso.test into a mailbox", "closed 1 open session", "AUTH2003")
	waitClosed(t, c)
	n.fail(t, 1, []string{"not_found"}, "account", "show", "app@contoso.test")
	var m directory.Mailbox
	n.okJSON(t, &m, "mailbox", "show", "app@contoso.test")
	if !m.ConvertedFromHVE || !m.HasPassword {
		t.Errorf("converted mailbox = %+v", m)
	}
}

func TestMailboxAccessCommands(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "contoso.test")
	n.ok(t, "auth-policy", "create", "AllowBasic", "--allow-basic-smtp")
	if r := n.run(t, "alice-password\n", "mailbox", "create", "--name", "alice", "--address", "alice@contoso.test", "--password-stdin"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := n.run(t, "short\n", "mailbox", "create", "--name", "bob", "--address", "bob@contoso.test", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "at least 8") {
		t.Errorf("mailbox create with a short password: %d %s", r.code, r.stderr)
	}
	out := n.ok(t, "mailbox", "show", "alice@contoso.test")
	contains(t, "mailbox show", out, "has password", "true", "auth policy", "tokens valid from", "not set")

	r := n.run(t, "alice-new-password\n", "mailbox", "set", "alice@contoso.test", "--password-stdin", "--display-name", "Alice Adams", "--auth-policy", "AllowBasic")
	if r.code != 0 || !strings.Contains(r.stdout, "Alice Adams") || !strings.Contains(r.stdout, "AllowBasic") {
		t.Errorf("mailbox set: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// The new password works on the client endpoint; revoking ends the session.
	c := smtpSession(t, n.srv.ClientAddr.String(), smtp.PlainAuth("", "alice@contoso.test", "alice-new-password", "127.0.0.1"))
	out = n.ok(t, "mailbox", "set", "alice@contoso.test", "--revoke-sessions")
	contains(t, "mailbox set --revoke-sessions", out, "closed 1 open session")
	waitClosed(t, c)
	var m directory.Mailbox
	n.okJSON(t, &m, "mailbox", "show", "alice@contoso.test")
	if time.Since(m.TokensValidFrom) > time.Minute || m.AuthPolicy != "AllowBasic" {
		t.Errorf("mailbox after set = %+v", m)
	}
	n.fail(t, 1, []string{`authentication policy "Nope" does not exist`}, "mailbox", "set", "alice@contoso.test", "--auth-policy", "Nope")
	n.fail(t, 2, []string{"nothing to change"}, "mailbox", "set", "alice@contoso.test")
	n.ok(t, "mailbox", "set", "alice@contoso.test", "--auth-policy", "none")
}

func TestSecurityGroupAndCACommands(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	n.ok(t, "mailbox", "create", "--name", "alice", "--address", "alice@contoso.test", "--alias", "al@contoso.test")
	contains(t, "security-group create", n.ok(t, "security-group", "create", "Scanners"), "created security group Scanners")
	contains(t, "add-member", n.ok(t, "security-group", "add-member", "Scanners", "app@contoso.test"), "added app@contoso.test to security group Scanners")
	n.ok(t, "security-group", "add-member", "Scanners", "al@contoso.test")
	n.fail(t, 1, []string{"already a member"}, "security-group", "add-member", "Scanners", "alice@contoso.test")
	n.fail(t, 1, []string{`security group "Nope" does not exist`}, "security-group", "add-member", "Nope", "alice@contoso.test")
	out := n.ok(t, "security-group", "list")
	contains(t, "security-group list", out, "NAME", "MEMBERS", "Scanners", "app@contoso.test", "alice@contoso.test")
	var groups []directory.SecurityGroup
	n.okJSON(t, &groups, "security-group", "list")
	if len(groups) != 1 || len(groups[0].Members) != 2 {
		t.Errorf("security-group list --json = %+v", groups)
	}

	out = n.ok(t, "ca-policy", "create", "Block scanners", "--grant", "block", "--client-apps", "legacy", "--include-groups", "Scanners",
		"--exclude-users", "al@contoso.test", "--exclude-networks", "10.0.0.0/8")
	contains(t, "ca-policy create", out, `created Conditional Access policy "Block scanners" (report-only)`, "hve ca-policy set 'Block scanners' --state on")
	n.fail(t, 1, []string{`security group "Ghosts" does not exist in tenant default`}, "ca-policy", "create", "X", "--grant", "block", "--include-groups", "Ghosts")
	n.fail(t, 2, []string{"--include-networks", "not a CIDR prefix"}, "ca-policy", "create", "X", "--grant", "block", "--include-users", "all", "--include-networks", "10.0.0.0/33")
	n.fail(t, 2, []string{"--grant is required"}, "ca-policy", "create", "X", "--include-users", "all")
	n.fail(t, 1, []string{"grant", "not one of"}, "ca-policy", "create", "X", "--grant", "allow", "--include-users", "all")
	n.fail(t, 1, []string{"includes nobody"}, "ca-policy", "create", "X", "--grant", "block")
	n.fail(t, 1, []string{"nobody@contoso.test is not an HVE account or mailbox"}, "ca-policy", "create", "X", "--grant", "block", "--include-users", "nobody@contoso.test")

	var p directory.CAPolicy
	n.okJSON(t, &p, "ca-policy", "set", "Block scanners", "--state", "on", "--include-networks", "192.0.2.1")
	if p.State != directory.CAOn || p.Grant != directory.GrantBlock || len(p.ExcludeUsers) != 1 || p.ExcludeUsers[0] != "alice@contoso.test" ||
		len(p.IncludeNetworks) != 1 || p.IncludeNetworks[0] != "192.0.2.1/32" {
		t.Errorf("ca-policy set --json = %+v; want only state and networks changed", p)
	}
	n.fail(t, 2, []string{"nothing to change"}, "ca-policy", "set", "Block scanners")
	n.fail(t, 1, []string{`policy "Nope" does not exist`}, "ca-policy", "set", "Nope", "--state", "off")
	out = n.ok(t, "ca-policy", "list")
	contains(t, "ca-policy list", out, "STATE", "Block scanners", "on", "group:Scanners from 192.0.2.1/32", "alice@contoso.test,10.0.0.0/8",
		directory.BuiltInBlockLegacy, "report-only")
	var list []directory.CAPolicy
	n.okJSON(t, &list, "ca-policy", "list")
	if len(list) != 2 {
		t.Errorf("ca-policy list --json = %+v", list)
	}

	n.fail(t, 1, []string{"used by Conditional Access policy"}, "security-group", "remove", "Scanners")
	contains(t, "ca-policy remove", n.ok(t, "ca-policy", "remove", "Block scanners"), "removed Conditional Access policy Block scanners")
	n.ok(t, "security-group", "remove-member", "Scanners", "app@contoso.test")
	n.ok(t, "security-group", "remove", "Scanners")
	if out := n.ok(t, "security-group", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("security-group list after remove = %s", out)
	}
}

// token gets a token from the node's token endpoint as an app would:
// without the admin token.
func token(t *testing.T, n *node, appID, secret string) string {
	t.Helper()
	resp, err := http.PostForm(n.url+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {appID},
		"client_secret": {secret}, "scope": {"https://outlook.office365.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.TokenType != "Bearer" {
		t.Fatalf("token request: %d %+v %v", resp.StatusCode, tok, err)
	}
	return tok.AccessToken
}

func TestAppCommandsAndOAuthSignIn(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)

	out := n.ok(t, "app", "create", "--name", "Payroll")
	contains(t, "app create", out, "created app Payroll", "app (client) id:", "object id:", "client secret (shown this once): ", "hve app grant")
	var app struct {
		directory.App
		Secret string `json:"secret"`
	}
	n.okJSON(t, &app, "app", "create", "--name", "Scanner", "--secret-expires", "30d")
	if app.AppID == "" || app.ObjectID == "" || app.Secret == "" || len(app.Secrets) != 1 ||
		time.Until(app.Secrets[0].ExpiresAt) > 31*24*time.Hour || time.Until(app.Secrets[0].ExpiresAt) < 29*24*time.Hour {
		t.Fatalf("app create --json = %+v", app)
	}
	var raw map[string]any
	n.okJSON(t, &raw, "app", "create", "--name", "Other")
	if raw["app_id"] == nil || raw["secret"] == nil {
		t.Errorf("app create --json lacks app_id or secret: %v", raw)
	}
	n.fail(t, 1, []string{"expiry", "not in the future"}, "app", "create", "--name", "X", "--secret-expires", "2020-01-01")
	n.fail(t, 2, []string{"--name is required"}, "app", "create")

	out = n.ok(t, "app", "list")
	contains(t, "app list", out, "APP ID", "OBJECT ID", "Scanner", app.AppID, app.ObjectID, app.Secret[:3]+"...")
	if strings.Contains(out, app.Secret) || strings.Contains(n.ok(t, "app", "list", "--json"), app.Secret) {
		t.Error("app list shows a secret")
	}

	contains(t, "app grant", n.ok(t, "app", "grant", app.ObjectID, "Mail.Send"), "granted Mail.Send to app Scanner")
	n.fail(t, 1, []string{"permission \"Mail.Read\" is not known"}, "app", "grant", app.AppID, "Mail.Read")

	// allow-app takes either id and stores the app id; a wrong id names both forms.
	out = n.ok(t, "account", "allow-app", "app@contoso.test", app.ObjectID)
	contains(t, "allow-app", out, "allowed app "+app.AppID+" (Scanner) for app@contoso.test", "1 of at most 10")
	n.fail(t, 1, []string{`"not-an-app" is neither the app id nor the object id of an app registration in tenant default; hve app list shows both`},
		"account", "allow-app", "app@contoso.test", "not-an-app")
	n.fail(t, 1, []string{"already allowed"}, "account", "allow-app", "app@contoso.test", app.AppID)

	// A token from the public token endpoint signs in with XOAUTH2.
	tok := token(t, n, app.AppID, app.Secret)
	c := smtpSession(t, n.srv.SMTPAddr.String(), xoauth2{"app@contoso.test", tok})
	if err := c.Mail("app@contoso.test"); err != nil {
		t.Errorf("MAIL after an OAuth sign-in: %v", err)
	}
	var acc directory.Account
	n.okJSON(t, &acc, "account", "show", "app@contoso.test")
	if len(acc.AllowedApps) != 1 || acc.AllowedApps[0] != app.AppID {
		t.Errorf("allowed apps = %v, want the app id", acc.AllowedApps)
	}

	// Secrets: add prints one once; remove takes its id.
	out = n.ok(t, "app", "secret", "add", app.AppID, "--expires", "2099-01-01")
	contains(t, "app secret add", out, "client secret (shown this once): ", "expires: 2099-01-01T00:00:00Z")
	var sec struct {
		ID     int64  `json:"id"`
		Secret string `json:"secret"`
	}
	n.okJSON(t, &sec, "app", "secret", "add", app.AppID)
	if sec.Secret == "" || sec.ID == 0 {
		t.Errorf("app secret add --json = %+v", sec)
	}
	token(t, n, app.AppID, sec.Secret)
	contains(t, "app secret remove", n.ok(t, "app", "secret", "remove", app.AppID, fmt.Sprint(sec.ID)), "removed client secret")
	n.fail(t, 2, []string{"must be a number"}, "app", "secret", "remove", app.AppID, "first")
	n.fail(t, 1, []string{"not_found"}, "app", "secret", "remove", app.AppID, fmt.Sprint(sec.ID))

	contains(t, "app revoke-grant", n.ok(t, "app", "revoke-grant", app.AppID, "Mail.Send"), "revoked Mail.Send from app Scanner")
	n.fail(t, 1, []string{"does not have Mail.Send"}, "app", "revoke-grant", app.AppID, "Mail.Send")
	contains(t, "disallow-app", n.ok(t, "account", "disallow-app", "app@contoso.test", app.ObjectID), "removed app "+app.AppID)
	n.fail(t, 1, []string{"neither the app id nor the object id"}, "account", "disallow-app", "app@contoso.test", "not-an-app")
	contains(t, "app remove", n.ok(t, "app", "remove", app.AppID), "removed app")
	n.fail(t, 1, []string{"neither the app id nor the object id"}, "app", "remove", app.AppID)
}

func TestAllowedAppsLimitAndExternalApps(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	var first string
	for i := range 10 {
		var app struct {
			AppID string `json:"app_id"`
		}
		n.okJSON(t, &app, "app", "create", "--name", fmt.Sprint("app-", i))
		n.ok(t, "account", "allow-app", "app@contoso.test", app.AppID)
		if i == 0 {
			first = app.AppID
		}
	}
	var app struct {
		AppID string `json:"app_id"`
	}
	n.okJSON(t, &app, "app", "create", "--name", "eleventh")
	n.fail(t, 1, []string{"already allows 10 apps", "hve account disallow-app"}, "account", "allow-app", "app@contoso.test", app.AppID)

	// With a trusted issuer an unknown id is an external app.
	contains(t, "oauth issuer add", n.ok(t, "oauth", "issuer", "add", "https://login.example.com/v2.0", "--audience", "api://hve"),
		"trusting issuer https://login.example.com/v2.0 (audience api://hve, role Mail.Send)")
	n.fail(t, 2, []string{"--audience is required"}, "oauth", "issuer", "add", "https://other.example.com")
	n.fail(t, 1, []string{"must be an http or https URL"}, "oauth", "issuer", "add", "login.example.com", "--audience", "x")
	contains(t, "oauth issuer list", n.ok(t, "oauth", "issuer", "list"), "URL", "https://login.example.com/v2.0", "api://hve", "Mail.Send")
	n.fail(t, 1, []string{"is not allowed for app@contoso.test"}, "account", "disallow-app", "app@contoso.test", app.AppID)
	n.ok(t, "account", "disallow-app", "app@contoso.test", first)
	out := n.ok(t, "account", "allow-app", "app@contoso.test", "ext-1234")
	contains(t, "allow-app external", out, "allowed ext-1234 for app@contoso.test as the app id of an app of a trusted external issuer")
	contains(t, "disallow-app external", n.ok(t, "account", "disallow-app", "app@contoso.test", "ext-1234"), "removed app ext-1234")
	contains(t, "oauth issuer remove", n.ok(t, "oauth", "issuer", "remove", "https://login.example.com/v2.0"), "removed issuer")
	n.fail(t, 1, []string{"does not trust issuer"}, "oauth", "issuer", "remove", "https://login.example.com/v2.0")
}

func TestDiagnoseCommand(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	n.ok(t, "mailbox", "create", "--name", "alice", "--address", "alice@contoso.test")

	out := n.ok(t, "account", "diagnose", "app@contoso.test", "--from-ip", "192.0.2.7")
	contains(t, "diagnose", out, "diagnose app@contoso.test (account): basic sign-in on the hve endpoint from 192.0.2.7",
		"CHECK", "VERDICT", "DETAIL", "FIX", "identity", "pass", "authentication policy", "Conditional Access", "report-only",
		"result: would sign in, given the right password",
		"daily recipient limits", "no daily recipient limit; 0 envelope recipients sent today")

	// A limit the account has used up shows, with its fix. Nothing was
	// sent, so a limit cannot be used up; set one and check it is shown.
	n.ok(t, "account", "set", "app@contoso.test", "--daily-recipient-limit", "5")
	out = n.ok(t, "account", "diagnose", "app@contoso.test")
	contains(t, "diagnose with a limit", out, "account limit 5; 0 envelope recipients sent today")

	n.ok(t, "ca-policy", "create", "No legacy", "--grant", "block", "--client-apps", "legacy", "--include-users", "all", "--state", "on")
	out = n.ok(t, "account", "diagnose", "app@contoso.test")
	contains(t, "diagnose blocked", out, "fail", "result: refused with 535 5.7.139", "AADSTS53003", "reason:", "No legacy")

	var d struct {
		Address string `json:"address"`
		OK      bool   `json:"ok"`
		Reply   string `json:"reply"`
		Steps   []struct {
			Check   string `json:"check"`
			Verdict string `json:"verdict"`
			Detail  string `json:"detail"`
			Fix     string `json:"fix"`
		} `json:"steps"`
	}
	var app struct {
		AppID    string `json:"app_id"`
		ObjectID string `json:"object_id"`
	}
	n.okJSON(t, &app, "app", "create", "--name", "Payroll")
	n.okJSON(t, &d, "account", "diagnose", "app@contoso.test", "--auth", "oauth", "--app", app.ObjectID)
	if d.Address != "app@contoso.test" || d.OK || len(d.Steps) < 3 || !strings.HasPrefix(d.Reply, "5") {
		t.Errorf("diagnose --auth oauth --json = %+v; want a refusal (no Mail.Send, app not allowed) with steps", d)
	}
	out = n.ok(t, "account", "diagnose", "app@contoso.test", "--auth", "oauth", "--app", app.AppID)
	contains(t, "diagnose --auth oauth", out, "oauth sign-in on the hve endpoint with a token of app "+app.AppID, "Mail.Send permission", "allowed apps", "hve app grant")
	for _, s := range d.Steps {
		if s.Verdict == "fail" && s.Fix == "" {
			t.Errorf("failed step %q has no fix", s.Check)
		}
	}
	out = n.ok(t, "account", "diagnose", "alice@contoso.test")
	contains(t, "diagnose of a mailbox", out, "alice@contoso.test (mailbox): basic sign-in on the client endpoint")
	out = n.ok(t, "account", "diagnose", "alice@contoso.test", "--endpoint", "hve")
	contains(t, "diagnose of a mailbox on the HVE endpoint", out, "endpoint", "fail", "535 5.7.3")
	n.fail(t, 1, []string{"not one of basic, oauth"}, "account", "diagnose", "app@contoso.test", "--auth", "kerberos")
	n.fail(t, 1, []string{"no HVE account or mailbox"}, "account", "diagnose", "nobody@contoso.test")
}

func TestRotateKey(t *testing.T) {
	n := startNode(t)
	out := n.ok(t, "oauth", "rotate-key")
	contains(t, "oauth rotate-key", out, "new signing key", "1 older key(s) stay published")
	var rep struct {
		Current string `json:"current"`
		Keys    []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	n.okJSON(t, &rep, "oauth", "rotate-key")
	if rep.Current == "" || len(rep.Keys) != 3 || rep.Keys[0].KID != rep.Current {
		t.Errorf("oauth rotate-key --json = %+v", rep)
	}
	// The keys are public: no admin token.
	resp, err := http.Get(n.url + "/oauth2/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil || resp.StatusCode != 200 || len(jwks.Keys) != 3 {
		t.Errorf("GET /oauth2/keys: %d %+v %v", resp.StatusCode, jwks, err)
	}
}
