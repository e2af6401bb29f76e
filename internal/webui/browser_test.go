package webui_test

// The browser test: a real hve node in-process, Debian's Chromium driven
// with chromedp. It signs in, creates an HVE account, sends a message as
// it over SMTP, finds it in message trace and sees it in the usage chart,
// and saves a screenshot of every page at 1280 and 390 pixels wide.
//
// Screenshots go to $HVE_ARTEFACTS (else a temporary directory, logged);
// with -update-screenshots, those docs/admin-center.md shows are also
// written to docs/img.

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"hve/internal/adminauth"
	"hve/internal/client"
	"hve/internal/config"
	"hve/internal/password"
	"hve/internal/server"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the screenshots of the browser test to docs/img")

// requireChromium returns the path of Chromium. Missing, it fails the test
// under CI (where .ci/run installs the chromium package) and skips it
// elsewhere.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH; install it with: apt-get install chromium"
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(msg + " (CI is set, so a missing browser is a failure)")
	}
	t.Skip(msg)
	return ""
}

const (
	adminName     = "ana"
	adminPassword = "browser test password"
	accountPW     = "Account-Passw0rd-1"
)

// startNode runs a node with the default tenant, contoso.test, alice's
// mailbox and the admin user ana.
func startNode(t *testing.T) (*server.Server, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Hostname = "hve.test"
	cfg.SMTP.Addr = "127.0.0.1:0"
	cfg.Client.Addr = ""
	cfg.Admin.Addr = "127.0.0.1:0"
	srv, err := server.Start(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := "http://" + srv.AdminAddr.String()
	token, err := os.ReadFile(srv.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	api := client.New(base, strings.TrimSpace(string(token)))
	ctx := t.Context()
	const T = "/api/v1/tenants/default"
	for _, call := range []struct {
		path string
		body any
	}{
		{T + "/domains", map[string]string{"name": "contoso.test"}},
		{T + "/mailboxes", map[string]any{"name": "alice", "address": "alice@contoso.test", "display_name": "Alice Adams"}},
		{T + "/groups", map[string]any{"name": "Team", "address": "team@contoso.test"}},
		{T + "/groups/team@contoso.test/members", map[string]any{"address": "alice@contoso.test"}},
		{T + "/auth-policies", map[string]any{"name": "AllowBasic", "allow_basic_auth_smtp": true}},
		{T + "/apps", map[string]any{"name": "Payroll"}},
		{T + "/oauth/issuers", map[string]any{"url": "https://login.example.test/contoso/v2.0", "audience": "api://hve"}},
		{T + "/webhooks", map[string]any{"url": "https://siem.contoso.test/hve", "events": []string{"alert", "failed"}}},
	} {
		if err := api.Do(ctx, "POST", call.path, call.body, nil); err != nil {
			t.Fatalf("setup %s: %v", call.path, err)
		}
	}
	hash, err := password.Hash(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.CreateAdminUser(ctx, adminauth.User{Name: adminName, Role: adminauth.GlobalAdmin, PasswordHash: hash, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return srv, base
}

// sendMail submits one message as from, over STARTTLS with AUTH PLAIN.
func sendMail(t *testing.T, addr, from, pw, to, subject string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("browser-test.local"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	// PlainAuth checks the name against the one dialled.
	host, _, _ := strings.Cut(addr, ":")
	if err := c.Auth(smtp.PlainAuth("", from, pw, host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nHello from the browser test.\r\n", from, to, subject)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// artefacts returns the directory for screenshots.
func artefacts(t *testing.T) string {
	dir := os.Getenv("HVE_ARTEFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "admin-center")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots are in %s", dir)
	return dir
}

func TestBrowser(t *testing.T) {
	chromium := requireChromium(t)
	srv, base := startNode(t)
	shots := artefacts(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	eval := func(what, expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}

	// Signed out, / is the sign-in form; Tab first reaches the skip link.
	run("sign-in page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("name")))
	shoot(t, ctx, shots, "signin", 1280)
	run("sign in",
		chromedp.SendKeys(chromedp.ID("name"), adminName),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Submit(chromedp.ID("password")))
	run("signed in", chromedp.WaitVisible(chromedp.CSS("nav.side")))
	// Keyboard: the first Tab reaches the skip link, which moves focus
	// to the page's content.
	run("keyboard", chromedp.KeyEvent("\t"))
	if focused := eval("focus", `document.activeElement.className`); focused != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", focused)
	}
	run("skip link", chromedp.KeyEvent("\r"))
	if focused := eval("focus", `document.activeElement.id`); focused != "main" {
		t.Errorf("the skip link moves focus to %q, want main", focused)
	}

	// Create an HVE account, entirely with the keyboard-usable form.
	run("accounts page", chromedp.Navigate(base+"/accounts?tenant=default"), chromedp.WaitVisible(chromedp.ID("acc-name")))
	run("create account",
		chromedp.SendKeys(chromedp.ID("acc-name"), "Mailer"),
		chromedp.SendKeys(chromedp.ID("acc-address"), "mailer@contoso.test"),
		chromedp.SendKeys(chromedp.ID("acc-display"), "Contoso Mailer"),
		chromedp.SendKeys(chromedp.ID("acc-password"), accountPW),
		chromedp.Submit(chromedp.ID("acc-password")),
		chromedp.WaitVisible(chromedp.CSS(".flash.ok")))
	if got := text(".flash.ok"); !strings.Contains(got, "mailer@contoso.test") {
		t.Fatalf("after creating the account: %q", got)
	}
	// Basic SMTP for it, through its page.
	run("account page", chromedp.Navigate(base+"/accounts/mailer@contoso.test?tenant=default"), chromedp.WaitVisible(chromedp.ID("auth_policy")),
		chromedp.SetValue(chromedp.ID("auth_policy"), "AllowBasic"), chromedp.Submit(chromedp.ID("auth_policy")),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if got := text(".flash"); !strings.Contains(got, "Saved") {
		t.Fatalf("saving the account: %q", got)
	}

	// Send it a message over SMTP, then find it in trace.
	sendMail(t, srv.SMTPAddr.String(), "mailer@contoso.test", accountPW, "team@contoso.test", "Quarterly numbers")
	deadline := time.Now().Add(30 * time.Second)
	for {
		run("trace", chromedp.Navigate(base+"/trace?tenant=default&sender=mailer@contoso.test&status=Delivered"), chromedp.WaitVisible(chromedp.CSS("table")))
		if strings.Contains(text("table tbody"), "alice@contoso.test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the message never showed as delivered in trace: %s", text("table tbody"))
		}
		time.Sleep(300 * time.Millisecond)
	}
	run("trace without status", chromedp.Navigate(base+"/trace?tenant=default&sender=mailer@contoso.test"), chromedp.WaitVisible(chromedp.CSS("table")))
	if body := text("table tbody"); !strings.Contains(body, "Quarterly numbers") || !strings.Contains(body, "Received") {
		t.Errorf("trace results: %s", body)
	}
	run("timeline", chromedp.Click(chromedp.CSS("table tbody a.mono")), chromedp.WaitVisible(chromedp.CSS("ol.timeline")))
	if tl := text("ol.timeline"); !strings.Contains(tl, "Expanded") || !strings.Contains(tl, "Delivered") {
		t.Errorf("timeline: %s", tl)
	}
	shoot(t, ctx, shots, "timeline", 1280)

	// The message is in the usage chart.
	run("reports", chromedp.Navigate(base+"/reports?tenant=default"), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("svg.chart rect.bar title")).map(t => t.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if !hasBar(bars, ": 1") {
		t.Errorf("no bar of the usage chart shows the message: %v", bars)
	}
	if senders := text("main"); !strings.Contains(senders, "mailer@contoso.test") {
		t.Error("the reports page does not list the sender")
	}

	// The "what if" evaluator.
	run("what if", chromedp.Navigate(base+"/conditional-access?tenant=default&user=mailer@contoso.test&ip=192.0.2.1&client_app=legacy"),
		chromedp.WaitVisible(chromedp.ID("whatif")))
	if got := text("main"); !strings.Contains(got, "Not blocked") || !strings.Contains(got, "Block legacy authentication") {
		t.Errorf("what if: %s", got)
	}

	// Every page at both widths; none is wider than the screen.
	pages := map[string]string{
		"home": "/", "accounts": "/accounts", "account": "/accounts/mailer@contoso.test", "diagnose": "/accounts/mailer@contoso.test/diagnose",
		"mailboxes": "/mailboxes", "groups": "/groups", "domains": "/domains", "routes": "/routes", "policies": "/policies",
		"conditional-access": "/conditional-access?user=mailer@contoso.test&ip=192.0.2.1", "apps": "/apps",
		"trace": "/trace?sender=mailer@contoso.test", "reports": "/reports", "queue": "/queue", "audit": "/audit", "admins": "/admins",
		"mailbox": "/mailboxes/alice@contoso.test", "convert": "/accounts/mailer@contoso.test/convert", "settings": "/settings", "webhooks": "/webhooks",
	}
	for _, width := range []int{1280, 390} {
		for name, path := range pages {
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			run(name, chromedp.EmulateViewport(int64(width), 900), chromedp.Navigate(base+path+sep+"tenant=default"), chromedp.WaitVisible(chromedp.CSS("main")))
			if overflow := eval(name+" overflow", `document.documentElement.scrollWidth > window.innerWidth + 1`); overflow != false {
				t.Errorf("%s at %dpx is wider than the screen", path, width)
			}
			shoot(t, ctx, shots, name, width)
		}
	}
}

func hasBar(bars []string, suffix string) bool {
	for _, b := range bars {
		if strings.HasSuffix(b, suffix) {
			return true
		}
	}
	return false
}

// docsShots are the phone-width screenshots docs/admin-center.md shows;
// every page's 1280-pixel screenshot goes to docs/img too.
var docsShots = map[string]bool{
	"signin-1280": true, "home-1280": true, "accounts-1280": true, "account-1280": true, "diagnose-1280": true, "conditional-access-1280": true,
	"apps-1280": true, "trace-1280": true, "timeline-1280": true, "reports-1280": true, "audit-1280": true, "routes-1280": true,
	"policies-1280": true, "queue-1280": true, "admins-1280": true, "groups-1280": true, "accounts-390": true, "trace-390": true,
}

// shoot saves a full-page screenshot as PNG (and, with
// -update-screenshots, a copy in docs/img).
func shoot(t *testing.T, ctx context.Context, dir, name string, width int) {
	t.Helper()
	file := fmt.Sprintf("%s-%d", name, width)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(dir, file+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *updateScreenshots && (width == 1280 || docsShots[file]) {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", "admin-"+file+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
