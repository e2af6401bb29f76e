package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// oauthScript signs in with Python's smtplib the ways applications do: AUTH
// LOGIN, AUTH PLAIN and AUTH XOAUTH2 through smtplib's auth(), each followed
// by one message, and prints one JSON object: per case, "250 <queue id>" or
// the refusal's code and text.
const oauthScript = `
import json, smtplib, ssl, sys

host, port, user, pw, token, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
res = {}

def xoauth2(challenge=None):
    return "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)

def attempt(case, sign_in):
    s = smtplib.SMTP(host, port, local_hostname="python.e2e.test", timeout=30)
    try:
        s.starttls(context=ctx)
        s.ehlo()
        s.user, s.password = user, pw
        sign_in(s)
        msg = ("From: %s\r\nTo: alice@contoso.test\r\nSubject: python %s %s\r\n\r\nHello.\r\n" % (user, case, tag))
        s.sendmail(user, ["alice@contoso.test"], msg)
        code, text = s.noop()
        res[case] = "250"
    except smtplib.SMTPAuthenticationError as e:
        res[case] = [e.smtp_code, e.smtp_error.decode()]
    finally:
        try:
            s.quit()
        except Exception:
            pass

cases = sys.argv[7].split(",")
if "login" in cases:
    attempt("login", lambda s: s.auth("LOGIN", s.auth_login, initial_response_ok=False))
if "plain" in cases:
    attempt("plain", lambda s: s.auth("PLAIN", s.auth_plain))
if "xoauth2" in cases:
    attempt("xoauth2", lambda s: s.auth("XOAUTH2", xoauth2))
print(json.dumps(res))
`

// pythonSignIns runs oauthScript for the given cases ("login", "plain",
// "xoauth2") and returns, per case, "250" or the refusal as "CODE TEXT".
func (s *server) pythonSignIns(python, user, pw, token, tag string, cases ...string) map[string]string {
	s.t.Helper()
	script := filepath.Join(s.t.TempDir(), "oauth_e2e.py")
	if err := os.WriteFile(script, []byte(oauthScript), 0o600); err != nil {
		s.t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.smtp(), ":")
	out, err := runTool(s.t, clientTimeout, nil, python, script, host, port, user, pw, token, tag, strings.Join(cases, ","))
	if err != nil {
		s.t.Fatalf("python script failed: %v\n%s", err, out)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		s.t.Fatalf("python output is not JSON: %v\n%s", err, out)
	}
	res := map[string]string{}
	for k, v := range raw {
		var ok string
		if json.Unmarshal(v, &ok) == nil {
			res[k] = ok
			continue
		}
		var refused []any
		json.Unmarshal(v, &refused)
		if len(refused) == 2 {
			res[k] = strings.TrimSuffix(strings.TrimSuffix(jsonNumber(refused[0]), ".0"), ".") + " " + refused[1].(string)
		}
	}
	return res
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// fetchToken gets an access token from hve's token endpoint with curl, as
// an application's OAuth library would.
func (s *server) fetchToken(curl, clientID, secret string) string {
	s.t.Helper()
	out, err := runTool(s.t, clientTimeout, nil, curl, "--silent", "--show-error", "--fail-with-body",
		"http://"+s.admin()+"/oauth2/token",
		"-d", "grant_type=client_credentials", "-d", "client_id="+clientID,
		"--data-urlencode", "client_secret="+secret,
		"-d", "scope=https://outlook.office365.com/.default")
	if err != nil {
		s.t.Fatalf("curl /oauth2/token: %v\n%s", err, out)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		s.t.Fatalf("token endpoint answered %q (%v); want access_token, token_type Bearer, expires_in", out, err)
	}
	return tok.AccessToken
}

// TestOAuthClients registers an app, grants it Mail.Send, allows it on the
// HVE account, fetches a token with curl and sends with it through curl
// (--oauth2-bearer, XOAUTH2 and OAUTHBEARER) and Python's smtplib
// (XOAUTH2), next to LOGIN and PLAIN. Then it checks the refusals an admin
// meets: the app taken off the allowed list (550 5.7.240), a revoked
// session's old token (535 5.7.143), an authentication policy that blocks
// basic auth (535 5.7.139) while OAuth keeps working.
func TestOAuthClients(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl", "curl")
	python := requireTool(t, "python3", "python3")
	s := startSeeded(t)

	var app struct {
		AppID  string `json:"app_id"`
		Secret string `json:"secret"`
	}
	s.cliJSON(&app, "app", "create", "--name", "HR system")
	if app.AppID == "" || app.Secret == "" {
		t.Fatalf("app create --json gave %+v; want app_id and secret", app)
	}
	s.cli("", "app", "grant", app.AppID, "Mail.Send")
	s.cli("", "account", "allow-app", account, app.AppID)
	token := s.fetchToken(curl, app.AppID, app.Secret)

	curlSend := func(t *testing.T, bearer, tag string) (string, error) {
		file := filepath.Join(t.TempDir(), "m.eml")
		msg := "From: " + account + "\r\nTo: " + alice + "\r\nSubject: curl oauth " + tag + "\r\n\r\nHello.\r\n"
		if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		return runTool(t, clientTimeout, nil, curl, "--verbose", "--silent", "--show-error", "--ssl-reqd", "--insecure",
			"--connect-timeout", "10", "--max-time", "30", "smtp://"+s.smtp()+"/curl.e2e.test",
			"--user", account, "--oauth2-bearer", bearer,
			"--mail-from", account, "--mail-rcpt", alice, "--upload-file", file)
	}
	// curl picks the OAuth mechanism itself (OAUTHBEARER when offered, even
	// with --login-options AUTH=XOAUTH2); Python's smtplib below does XOAUTH2.
	t.Run("curl", func(t *testing.T) {
		out, err := curlSend(t, token, uniqueToken(t, "oauth"))
		if err != nil {
			t.Fatalf("curl --oauth2-bearer failed: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`> AUTH (XOAUTH2|OAUTHBEARER)`).MatchString(out) || !strings.Contains(out, "< 235 ") || !acceptedRe.MatchString(out) {
			t.Errorf("curl transcript lacks AUTH XOAUTH2/OAUTHBEARER, 235 or the 250 with a queue id:\n%s", out)
		}
	})

	t.Run("python", func(t *testing.T) {
		s := s.with(t)
		got := s.pythonSignIns(python, account, password, token, uniqueToken(t, "py-oauth"), "login", "plain", "xoauth2")
		for _, c := range []string{"login", "plain", "xoauth2"} {
			if got[c] != "250" {
				t.Errorf("smtplib %s: %q, want the message accepted", c, got[c])
			}
		}
		s.waitDrained(30 * time.Second)
	})

	t.Run("app-not-allowed", func(t *testing.T) {
		s := s.with(t)
		s.cli("", "account", "disallow-app", account, app.AppID)
		got := s.pythonSignIns(python, account, password, token, "x", "xoauth2")
		if !strings.HasPrefix(got["xoauth2"], "550 5.7.240 ") {
			t.Errorf("XOAUTH2 with an app off the allowed list: %q, want 550 5.7.240", got["xoauth2"])
		}
		s.cli("", "account", "allow-app", account, app.AppID)
		if got := s.pythonSignIns(python, account, password, token, "x", "xoauth2"); got["xoauth2"] != "250" {
			t.Errorf("XOAUTH2 after allow-app again: %q, want accepted on the very next sign-in", got["xoauth2"])
		}
	})

	t.Run("basic-blocked-oauth-works", func(t *testing.T) {
		s := s.with(t)
		s.cli("", "auth-policy", "create", "no-basic")
		s.cli("", "tenant", "set", "--default-auth-policy", "no-basic")
		got := s.pythonSignIns(python, account, password, token, "x", "login", "xoauth2")
		if !strings.HasPrefix(got["login"], "535 5.7.139 ") || !strings.Contains(got["login"], "basic auth is blocked") {
			t.Errorf("LOGIN under a policy that blocks basic SMTP: %q, want 535 5.7.139 ... basic auth is blocked", got["login"])
		}
		if got["xoauth2"] != "250" {
			t.Errorf("XOAUTH2 under a policy that blocks basic SMTP: %q, want accepted", got["xoauth2"])
		}
		s.cli("", "tenant", "set", "--default-auth-policy", "none")
	})

	t.Run("revoke", func(t *testing.T) {
		s := s.with(t)
		old := token
		time.Sleep(1100 * time.Millisecond) // token times (iat) have whole seconds
		s.cli("", "account", "set", account, "--revoke-sessions")
		got := s.pythonSignIns(python, account, password, old, "x", "xoauth2")
		if !strings.HasPrefix(got["xoauth2"], "535 5.7.143 ") {
			t.Errorf("XOAUTH2 with a token issued before revocation: %q, want 535 5.7.143", got["xoauth2"])
		}
		time.Sleep(1100 * time.Millisecond)
		fresh := s.fetchToken(curl, app.AppID, app.Secret)
		if got := s.pythonSignIns(python, account, password, fresh, "x", "xoauth2"); got["xoauth2"] != "250" {
			t.Errorf("XOAUTH2 with a token fetched after revocation: %q, want accepted", got["xoauth2"])
		}
	})
}

// TestExternalIssuer trusts a second, test-only OpenID Connect issuer (its
// discovery document and JWKS served by this test) and signs in with a token
// it signed, as an organisation using its own identity provider would.
func TestExternalIssuer(t *testing.T) {
	t.Parallel()
	python := requireTool(t, "python3", "python3")
	s := startSeeded(t)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key.Public(), KeyID: "idp-key-1", Algorithm: string(jose.RS256), Use: "sig"}
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	defer idp.Close()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL, "jwks_uri": idp.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "idp-key-1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	const clientID = "3f1c8a52-7d4e-4b1a-9c61-0e2d5b7a9f10"
	sign := func(aud string, roles []string) string {
		now := time.Now()
		claims := map[string]any{
			"iss": idp.URL, "aud": aud, "sub": clientID, "azp": clientID, "roles": roles,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		tok, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	s.cli("", "oauth", "issuer", "add", idp.URL, "--audience", "api://hve-smtp", "--role", "Mail.Send")
	out := s.cli("", "account", "allow-app", account, clientID)
	if !strings.Contains(strings.ToLower(out), "external") {
		t.Errorf("allow-app of an id only the external issuer knows should say it is external: %q", out)
	}
	var issuers []struct {
		URL string `json:"url"`
	}
	s.cliJSON(&issuers, "oauth", "issuer", "list")
	if !slices.ContainsFunc(issuers, func(i struct {
		URL string `json:"url"`
	}) bool {
		return strings.TrimSuffix(i.URL, "/") == idp.URL
	}) {
		t.Fatalf("oauth issuer list: %+v lacks %s", issuers, idp.URL)
	}

	got := s.pythonSignIns(python, account, password, sign("api://hve-smtp", []string{"Mail.Send"}), uniqueToken(t, "idp"), "xoauth2")
	if got["xoauth2"] != "250" {
		t.Errorf("XOAUTH2 with the external issuer's token: %q, want accepted", got["xoauth2"])
	}
	got = s.pythonSignIns(python, account, password, sign("api://someone-else", []string{"Mail.Send"}), "x", "xoauth2")
	if !strings.HasPrefix(got["xoauth2"], "535 5.7.3 ") {
		t.Errorf("XOAUTH2 with a token for another audience: %q, want 535 5.7.3", got["xoauth2"])
	}
	got = s.pythonSignIns(python, account, password, sign("api://hve-smtp", []string{"User.Read"}), "x", "xoauth2")
	if !strings.HasPrefix(got["xoauth2"], "535 5.7.144 ") {
		t.Errorf("XOAUTH2 with a token without the configured role: %q, want 535 5.7.144", got["xoauth2"])
	}
}

// TestClientEndpoint sends as a person's mailbox through the standard client
// endpoint with swaks, checks the Sent Items copy, and that the HVE account
// is sent to the HVE endpoint.
func TestClientEndpoint(t *testing.T) {
	t.Parallel()
	swaks := requireTool(t, "swaks", "swaks libnet-ssleay-perl")
	s := startSeeded(t)
	const alicePW = "alice-Mailbox-Passw0rd"
	s.cli(alicePW+"\n", "mailbox", "set", alice, "--password-stdin")

	send := func(user, pw, tag string) (string, error) {
		return runTool(t, clientTimeout, nil, swaks, "--server", s.client(), "--tls", "--ehlo", "swaks.e2e.test",
			"--auth", "LOGIN", "--auth-user", user, "--auth-password", pw,
			"--from", user, "--to", bob, "--header", "Subject: client "+tag, "--body", "Hi Bob.", "--timeout", "30")
	}
	tag := uniqueToken(t, "client")
	out, err := send(alice, alicePW, tag)
	if err != nil {
		t.Fatalf("swaks to the client endpoint failed: %v\n%s", err, out)
	}
	if !acceptedRe.MatchString(out) {
		t.Fatalf("no 250 with a queue id:\n%s", out)
	}
	var sent []struct {
		Folder  string `json:"folder"`
		Subject string `json:"subject"`
	}
	s.cliJSON(&sent, "mailbox", "messages", alice)
	if !slices.ContainsFunc(sent, func(m struct {
		Folder  string `json:"folder"`
		Subject string `json:"subject"`
	}) bool {
		return m.Folder == "Sent Items" && m.Subject == "client "+tag
	}) {
		t.Errorf("alice's mailbox has no Sent Items copy of %q: %+v", "client "+tag, sent)
	}
	s.waitDrained(30 * time.Second)
	if got := withSubject(s.messages(bob), "client "+tag); len(got) != 1 {
		t.Errorf("bob has %d copies of the message, want 1", len(got))
	}

	out, err = send(account, password, "x")
	if err == nil || !strings.Contains(out, "535 5.7.57 Client not authenticated to send mail. Use the High Volume Email endpoint") {
		t.Errorf("the HVE account on the client endpoint: want 535 5.7.57 ... Use the High Volume Email endpoint:\n%s", out)
	}
}
