package webui

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"hve/internal/alert"
	"hve/internal/trace"
)

// raiseAlerts raises alerts as the limits engine and the anomaly rule
// do: through package alert, which records them as trace events.
func raiseAlerts(t *testing.T, f *fixture, tenant string, alerts ...alert.Alert) {
	t.Helper()
	ctx := context.Background()
	tn, err := f.st.TenantByName(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	r := alert.NewRaiser(f.st, slog.New(slog.DiscardHandler))
	for _, a := range alerts {
		a.TenantID = tn.ID
		if raised, err := r.Raise(ctx, a); err != nil || !raised {
			t.Fatalf("raising %+v: %v, %v", a, raised, err)
		}
	}
}

// TestHomeRecentAlerts: each tenant's card lists its newest alerts of
// the last 24 hours, newest first, and links to all of them in message
// trace; a tenant admin sees only its tenant's, and a trace-reader sees
// them too (they are trace).
func TestHomeRecentAlerts(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	var contoso []alert.Alert
	// One alert of two days ago, then seven in the last hours: the card
	// shows the newest five.
	for i, ago := range []time.Duration{48 * time.Hour, 7 * time.Hour, 6 * time.Hour, 5 * time.Hour, 4 * time.Hour, 3 * time.Hour, 2 * time.Hour, time.Hour} {
		contoso = append(contoso, alert.Alert{Account: "app@contoso.test", Kind: alert.KindAnomaly, Per: -1, At: now.Add(-ago),
			Message: fmt.Sprintf("contoso alert %d: app@contoso.test sent far more than usual", i)})
	}
	raiseAlerts(t, f, "contoso", contoso...)
	raiseAlerts(t, f, "fabrikam", alert.Alert{Account: "app@fabrikam.test", Kind: alert.KindWarningLevel, At: now.Add(-time.Minute),
		Message: "fabrikam alert: app@fabrikam.test reached 80% of its daily limit"})
	// Other events of the day are not alerts.
	tn, _ := f.st.TenantByName(context.Background(), "contoso")
	if err := f.st.AddEvents(context.Background(), []trace.Event{{TenantID: tn.ID, Time: now.UTC(), QueueID: "Q1", Sender: "app@contoso.test",
		Recipient: "alice@contoso.test", Event: trace.EventReceived, Status: trace.StatusPending, Detail: "contoso received"}}); err != nil {
		t.Fatal(err)
	}

	b := f.browser(t)
	b.signIn("global")
	code, body := b.get("/")
	if code != http.StatusOK {
		t.Fatalf("home: %d\n%s", code, body)
	}
	if strings.Contains(body, "cannot filter by event") || strings.Contains(body, "cannot be shown") {
		t.Errorf("home still says alerts cannot be shown:\n%s", body)
	}
	contosoCard, fabrikamCard := card(t, body, "contoso"), card(t, body, "fabrikam")
	// Newest first: 7, 6, 5, 4, 3; not 2 and 1 (older), nor 0 (two days
	// old), nor the Received event.
	last := -1
	for i := 7; i >= 3; i-- {
		at := strings.Index(contosoCard, fmt.Sprintf("contoso alert %d:", i))
		if at < 0 {
			t.Errorf("contoso's card lacks alert %d:\n%s", i, contosoCard)
			continue
		}
		if at < last {
			t.Errorf("contoso's alert %d comes before a newer one; want newest first:\n%s", i, contosoCard)
		}
		last = at
	}
	for _, absent := range []string{"contoso alert 2:", "contoso alert 1:", "contoso alert 0:", "contoso received", "fabrikam alert"} {
		if strings.Contains(contosoCard, absent) {
			t.Errorf("contoso's card shows %q:\n%s", absent, contosoCard)
		}
	}
	if !strings.Contains(contosoCard, "<strong>app@contoso.test</strong>") {
		t.Errorf("contoso's card does not name the account:\n%s", contosoCard)
	}
	if !strings.Contains(contosoCard, `href="/trace?event=Alert&amp;since=1d&amp;tenant=contoso">All 7 alerts in message trace</a>`) {
		t.Errorf("contoso's card lacks the link to its 7 alerts in trace:\n%s", contosoCard)
	}
	if !strings.Contains(fabrikamCard, "fabrikam alert: app@fabrikam.test reached 80% of its daily limit") ||
		!strings.Contains(fabrikamCard, `tenant=fabrikam">This alert in message trace</a>`) || strings.Contains(fabrikamCard, "contoso alert") {
		t.Errorf("fabrikam's card:\n%s", fabrikamCard)
	}

	// The link finds exactly the alerts of the last day.
	code, body = b.get("/trace?event=Alert&since=1d&tenant=contoso")
	if code != http.StatusOK || strings.Count(body, "<td>Alert</td>") != 7 || strings.Contains(body, "contoso received") {
		t.Errorf("trace of contoso's alerts: %d, %d alert rows, want 7 and nothing else:\n%s", code, strings.Count(body, "<td>Alert</td>"), body)
	}
	if !strings.Contains(body, `<option value="Alert" selected>`) {
		t.Error("the trace form does not keep the event filter")
	}

	// A tenant admin sees only its tenant; a trace-reader sees the alerts.
	ta := f.browser(t)
	ta.signIn("tadmin")
	if _, body := ta.get("/"); !strings.Contains(body, "contoso alert 7:") || strings.Contains(body, "fabrikam alert") {
		t.Errorf("tenant admin's home:\n%s", body)
	}
	tr := f.browser(t)
	tr.signIn("tracer")
	_, body = tr.get("/")
	if c := card(t, body, "fabrikam"); !strings.Contains(c, "fabrikam alert") || !strings.Contains(c, "Health figures are for readers") {
		t.Errorf("trace-reader's fabrikam card:\n%s", c)
	}
}

// TestHomeNoAlerts: a tenant without alerts says so.
func TestHomeNoAlerts(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	b.signIn("global")
	if _, body := b.get("/"); !strings.Contains(card(t, body, "contoso"), "No alerts in the last 24 hours.") {
		t.Errorf("home without alerts:\n%s", body)
	}
}

// card returns the home page's section of the tenant.
func card(t *testing.T, body, tenant string) string {
	t.Helper()
	start := strings.Index(body, `<section class="panel" aria-labelledby="h-`+tenant+`">`)
	if start < 0 {
		t.Fatalf("the home page has no card of %s:\n%s", tenant, body)
	}
	end := strings.Index(body[start:], "</section>")
	return body[start : start+end]
}
