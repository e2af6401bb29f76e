package webui_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hve/internal/adminauth"
	"hve/internal/alert"
	"hve/internal/client"
	"hve/internal/limits"
	"hve/internal/password"
	"hve/internal/trace"
)

// TestBrowserTraceReader signs in as a trace-reader after a day with mail
// and two alerts: the home page shows the tenant's alerts (and no health
// figures), the navigation only Home, Message trace and Reports, and the
// alerts link leads to message trace filtered on alerts. It saves the
// home and trace pages as tracer-home and tracer-trace (1280 pixels in
// docs/img with -update-screenshots; run it alone to refresh only those:
// go test ./internal/webui -run TestBrowserTraceReader -update-screenshots).
func TestBrowserTraceReader(t *testing.T) {
	chromium := requireChromium(t)
	srv, base := startNode(t)
	shots := artefacts(t)
	ctx := t.Context()

	// An account with basic SMTP, one delivered message, two alerts.
	token, err := os.ReadFile(srv.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	api := client.New(base, strings.TrimSpace(string(token)))
	const T = "/api/v1/tenants/default"
	if err := api.Do(ctx, "POST", T+"/accounts", map[string]any{"name": "Mailer", "address": "mailer@contoso.test",
		"display_name": "Contoso Mailer", "password": accountPW}, nil); err != nil {
		t.Fatal(err)
	}
	if err := api.Do(ctx, "PATCH", T+"/accounts/mailer@contoso.test", map[string]any{"auth_policy": "AllowBasic"}, nil); err != nil {
		t.Fatal(err)
	}
	sendMail(t, srv.SMTPAddr.String(), "mailer@contoso.test", accountPW, "team@contoso.test", "Quarterly numbers")
	tn, err := srv.Store.TenantByName(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ev, err := srv.Store.SearchTrace(ctx, trace.Query{TenantID: tn.ID, Status: trace.StatusDelivered})
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message was not delivered within 30s")
		}
	}
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour).Add(-time.Hour)
	for _, a := range []alert.Alert{
		alert.WarningLevel(limits.Crossing{Subject: limits.Subject{TenantID: tn.ID, Kind: "account", Name: "mailer@contoso.test"},
			Key: "account/1/rcpt/day", Limit: 1000, WarnAt: 80, Used: 800, Window: now.Truncate(24 * time.Hour), At: now}),
		{TenantID: tn.ID, Account: "mailer@contoso.test", Kind: alert.KindAnomaly, Per: time.Hour, Window: hour,
			Message: fmt.Sprintf("mailer@contoso.test sent to 5210 recipients in the hour from %s UTC, above 1500 (10 × max(baseline 12.4 an hour "+
				"over the last 7 days, floor 150)); if this is not expected, check the account's sign-ins: its password or app secret may have leaked",
				hour.Format("2006-01-02 15:04"))},
	} {
		if raised, err := srv.Alerts.Raise(ctx, a); err != nil || !raised {
			t.Fatalf("raising %s: %v %v", a.Kind, raised, err)
		}
	}
	hash, err := password.Hash(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.CreateAdminUser(ctx, adminauth.User{Name: "tess", Role: adminauth.TraceReader, PasswordHash: hash, Enabled: true}); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	overflows := func(what string) {
		t.Helper()
		wide, err := chromedp.Run(bctx, chromedp.Evaluate[any](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if wide != false {
			t.Errorf("%s is wider than the screen", what)
		}
	}

	run("sign-in page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("name")))
	run("sign in as the trace-reader",
		chromedp.SendKeys(chromedp.ID("name"), "tess"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("nav.side")))
	if nav := strings.Join(strings.Fields(text("nav.side")), " "); !strings.Contains(nav, "Home") || !strings.Contains(nav, "Message trace") ||
		!strings.Contains(nav, "Reports") || strings.Contains(nav, "HVE accounts") || strings.Contains(nav, "Queue") {
		t.Errorf("a trace-reader's navigation = %q, want Home, Message trace and Reports only", nav)
	}
	home := text("main")
	for _, want := range []string{"Health figures are for readers", "Recent alerts", "sent to 5210 recipients", "reached 80% of its daily limit",
		"mailer@contoso.test", "These alerts in message trace"} {
		if !strings.Contains(home, want) {
			t.Errorf("the trace-reader's home page lacks %q:\n%s", want, home)
		}
	}
	if a, w := strings.Index(home, "5210 recipients"), strings.Index(home, "80% of its daily limit"); a > w {
		t.Error("the home page lists the older alert first; want newest first")
	}
	overflows("the trace-reader's home page at 1280px")
	shoot(t, bctx, shots, "tracer-home", 1280)

	run("trace", chromedp.Navigate(base+"/trace?tenant=default"), chromedp.WaitVisible(chromedp.CSS("table")))
	if rows := text("table tbody"); !strings.Contains(rows, "Delivered") || !strings.Contains(rows, "Alert") || !strings.Contains(rows, "Quarterly numbers") {
		t.Errorf("the trace-reader's trace page: %s", rows)
	}
	overflows("the trace-reader's trace page at 1280px")
	shoot(t, bctx, shots, "tracer-trace", 1280)

	// The home page's link: message trace filtered on alerts.
	run("alerts link", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`a[href*="event=Alert"]`)),
		chromedp.Click(chromedp.CSS(`a[href*="event=Alert"]`)), chromedp.WaitVisible(chromedp.CSS("table")))
	if rows := text("table tbody"); strings.Count(rows, "Alert") != 2 || strings.Contains(rows, "Delivered") || strings.Contains(rows, "Received") {
		t.Errorf("message trace from the alerts link: %s; want the two alerts only", rows)
	}

	// At phone width too (kept with the artefacts, not in docs/img).
	run("home at 390px", chromedp.EmulateViewport(390, 900), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("main")))
	overflows("the trace-reader's home page at 390px")
	shoot(t, bctx, shots, "tracer-home", 390)
}
