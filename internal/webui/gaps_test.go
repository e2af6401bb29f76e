package webui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"hve/internal/password"
)

// TestTraceReaderHome: a trace-reader's home page shows its tenants
// without an error (the health summary is not a trace route).
func TestTraceReaderHome(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("tracer")
	code, body := b.get("/")
	if code != 200 || strings.Contains(strings.ToLower(body), "forbidden") || strings.Contains(body, `class="flash err"`) {
		t.Fatalf("trace-reader home: %d\n%s", code, body)
	}
	if !strings.Contains(body, "contoso") || !strings.Contains(body, "Health figures are for readers") {
		t.Errorf("trace-reader home lacks the tenant cards or the note:\n%s", body)
	}
}

// postOK posts a form as b and fails unless the action redirected
// without an error flash on the page it leads to.
func postOK(t *testing.T, b *browser, path string, form url.Values, back string) {
	t.Helper()
	form.Set("tenant", "contoso")
	form.Set("back", back)
	if resp, body := b.post(path, form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
	}
	if _, body := b.get(back + "?tenant=contoso"); strings.Contains(body, `class="flash err"`) {
		t.Fatalf("%s failed: %s", path, body)
	}
}

// TestMailboxAndAccountEdits edits a mailbox (display name, policy,
// password, revoke) and an account's limits, then converts the account
// after its confirmation page.
func TestMailboxAndAccountEdits(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	b := f.browser(t)
	b.signIn("tadmin")
	b.get("/mailboxes?tenant=contoso")
	postOK(t, b, "/mailboxes", url.Values{"name": {"Ann"}, "address": {"ann@contoso.test"}, "display_name": {"Ann"}}, "/mailboxes")
	postOK(t, b, "/policies/auth", url.Values{"name": {"strict"}}, "/policies")
	const page = "/mailboxes/ann@contoso.test"
	if code, body := b.get(page + "?tenant=contoso"); code != 200 || !strings.Contains(body, "Set a password") {
		t.Fatalf("mailbox page: %d %s", code, body)
	}
	postOK(t, b, page, url.Values{"display_name": {"Ann B."}, "auth_policy": {"strict"}}, page)
	postOK(t, b, page+"/password", url.Values{"password": {"a new mailbox password"}}, page)
	postOK(t, b, page+"/revoke-sessions", url.Values{}, page)
	m, err := f.st.MailboxByAddress(ctx, "ann@contoso.test")
	if err != nil || m.DisplayName != "Ann B." || m.AuthPolicy != "strict" || password.Verify(m.PasswordHash, "a new mailbox password") != nil || m.TokensValidFrom.IsZero() {
		t.Errorf("mailbox after the edits: %+v %v", m, err)
	}
	if _, body := b.get(page + "?tenant=contoso"); strings.Contains(body, "a new mailbox password") {
		t.Error("the mailbox password is shown")
	}

	const acc = "/accounts/app@contoso.test"
	postOK(t, b, acc, url.Values{"display_name": {"App"}, "daily_recipient_limit": {"1000"}, "warn_at": {"80"}, "failure_report_to": {"ann@contoso.test"}}, acc)
	a, _ := f.st.AccountByAddress(ctx, "app@contoso.test")
	if a.DailyRecipientLimit != 1000 || a.WarnAt != 80 || a.FailureReportTo != "ann@contoso.test" {
		t.Errorf("account limits: %+v", a)
	}
	if code, body := b.get(acc + "/convert?tenant=contoso"); code != 200 || !strings.Contains(body, "cannot be undone") {
		t.Fatalf("convert confirmation: %d %s", code, body)
	}
	if _, err := f.st.AccountByAddress(ctx, "app@contoso.test"); err != nil {
		t.Fatal("the confirmation page converted the account")
	}
	resp, body := b.post(acc+"/convert", url.Values{"tenant": {"contoso"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/mailboxes/app@contoso.test") {
		t.Fatalf("convert: %d %s", resp.StatusCode, body)
	}
	if m, err := f.st.MailboxByAddress(ctx, "app@contoso.test"); err != nil || !m.ConvertedFromHVE {
		t.Errorf("after convert: %+v %v", m, err)
	}
}

// TestTenantSettings saves every tenant setting from the settings page.
func TestTenantSettings(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("tadmin")
	b.get("/policies?tenant=contoso")
	postOK(t, b, "/policies/auth", url.Values{"name": {"strict"}}, "/policies")
	if code, body := b.get("/settings?tenant=contoso"); code != 200 || !strings.Contains(body, "Outbound smarthost") {
		t.Fatalf("settings page: %d %s", code, body)
	}
	postOK(t, b, "/settings", url.Values{"security_defaults": {"on"}, "client_smtp_auth_disabled": {"on"}, "default_auth_policy": {"strict"},
		"hve_ramp_start": {"2027-01-01"}, "hve_ramp_end": {"2027-02-01"}, "hve_sunset": {"2027-03-01"}, "client_sunset": {"2027-04-01"},
		"daily_recipient_limit": {"50000"}, "max_hve_accounts": {"7"}, "external_sending": {"limited"}, "outbound_smarthost": {"relay.contoso.test:25"},
		"price_per_million": {"12.5"}}, "/settings")
	tn, _ := f.st.TenantByName(context.Background(), "contoso")
	st := tn.Settings
	if !st.SecurityDefaults || !st.ClientSMTPAuthDisabled || st.DefaultAuthPolicy != "strict" || st.HVEBasicAuth.RampStart.IsZero() ||
		st.HVEBasicAuth.SunsetAt.IsZero() || st.ClientBasicAuth.SunsetAt.IsZero() || st.DailyRecipientLimit != 50000 || st.MaxHVEAccounts != 7 ||
		st.ExternalSending != "limited" || st.OutboundSmarthost != "relay.contoso.test:25" || st.PricePerMillion != 12.5 {
		t.Errorf("settings after save: %+v", st)
	}
	// A bad ramp is the API's refusal, shown on the page.
	b.post("/settings", url.Values{"tenant": {"contoso"}, "back": {"/settings"}, "hve_ramp_start": {"2027-01-01"}})
	if _, body := b.get("/settings?tenant=contoso"); !strings.Contains(body, "ramp_end") {
		t.Error("a ramp without an end was not refused")
	}
}

// TestWebhooksPage adds a webhook (its generated secret shown once) and
// removes it.
func TestWebhooksPage(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("tadmin")
	b.get("/webhooks?tenant=contoso")
	resp, body := b.post("/webhooks", url.Values{"tenant": {"contoso"}, "url": {"https://siem.contoso.test/in"}, "event_alert": {"on"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="secret"`) {
		t.Fatalf("add webhook: %d %s", resp.StatusCode, body)
	}
	code, body := b.get("/webhooks?tenant=contoso")
	if code != 200 || !strings.Contains(body, "https://siem.contoso.test/in") || !strings.Contains(body, "alert") {
		t.Fatalf("webhooks page: %d %s", code, body)
	}
	postOK(t, b, "/webhooks/1/remove", url.Values{}, "/webhooks")
	if _, body := b.get("/webhooks?tenant=contoso"); strings.Contains(body, "siem.contoso.test") {
		t.Error("webhook not removed")
	}
}

// TestIssuersAndSigningKey trusts and removes an external issuer, and
// rotates the signing key as a global admin only.
func TestIssuersAndSigningKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	b := f.browser(t)
	b.signIn("tadmin")
	_, body := b.get("/apps?tenant=contoso")
	if strings.Contains(body, "/apps/rotate-key") {
		t.Error("a tenant admin is offered key rotation")
	}
	const iss = "https://login.example.test/tenant-1/v2.0"
	postOK(t, b, "/apps/issuers", url.Values{"url": {iss}, "audience": {"api://hve"}}, "/apps")
	if _, body := b.get("/apps?tenant=contoso"); !strings.Contains(body, iss) || !strings.Contains(body, "api://hve") {
		t.Fatal("the issuer is not listed")
	}
	postOK(t, b, "/apps/issuers/remove", url.Values{"url": {iss}}, "/apps")
	if _, body := b.get("/apps?tenant=contoso"); strings.Contains(body, iss) {
		t.Error("the issuer was not removed")
	}
	before, _ := f.st.SigningKeys(ctx)
	b.post("/apps/rotate-key", url.Values{"tenant": {"contoso"}, "back": {"/apps"}})
	if after, _ := f.st.SigningKeys(ctx); len(after) != len(before) {
		t.Error("a tenant admin rotated the signing key")
	}
	g := f.browser(t)
	g.signIn("global")
	if _, body := g.get("/apps?tenant=contoso"); !strings.Contains(body, "/apps/rotate-key") {
		t.Fatal("a global admin is not offered key rotation")
	}
	postOK(t, g, "/apps/rotate-key", url.Values{}, "/apps")
	if after, _ := f.st.SigningKeys(ctx); len(after) != len(before)+1 {
		t.Errorf("signing keys %d -> %d", len(before), len(after))
	}
}

// TestQueueRetryAll retries the whole queue and one domain's messages.
func TestQueueRetryAll(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("tadmin")
	b.get("/queue?tenant=contoso")
	postOK(t, b, "/queue/retry-all", url.Values{}, "/queue")
	postOK(t, b, "/queue/retry-all", url.Values{"domain": {"fabrikam.test"}}, "/queue")
	b.post("/queue/retry-all", url.Values{"tenant": {"contoso"}, "back": {"/queue"}, "domain": {"not a domain"}})
	if _, body := b.get("/queue?tenant=contoso"); !strings.Contains(body, `class="flash err"`) {
		t.Error("a bad domain was not refused")
	}
}
