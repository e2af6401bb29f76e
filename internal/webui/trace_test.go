package webui

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"hve/internal/trace"
)

// TestTraceSubjectFilter: the trace page passes the subject filter to the
// API, which matches in the store, wildcards taken literally.
func TestTraceSubjectFilter(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tn, err := f.st.TenantByName(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	var events []trace.Event
	for _, subj := range []string{"Invoice 50% off", "Invoice 500", "Weekly digest"} {
		events = append(events, trace.Event{TenantID: tn.ID, Time: time.Now().UTC(), QueueID: "Q" + subj[:1], Sender: "app@contoso.test",
			Recipient: "alice@contoso.test", Event: trace.EventReceived, Status: trace.StatusPending, Subject: subj})
	}
	if err := f.st.AddEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	b.signIn("global")

	code, body := b.get("/trace?tenant=contoso&subject=50%25")
	if code != http.StatusOK || !strings.Contains(body, "<td>Invoice 50% off</td>") || strings.Contains(body, "<td>Invoice 500</td>") {
		t.Errorf("trace with subject 50%%: %d, want only Invoice 50%% off:\n%s", code, body)
	}
	code, body = b.get("/trace?tenant=contoso&subject=INVOICE&subject_match=starts-with")
	if code != http.StatusOK || !strings.Contains(body, "<td>Invoice 500</td>") || strings.Contains(body, "<td>Weekly digest</td>") {
		t.Errorf("trace with subject starting with INVOICE: %d, want both invoices only", code)
	}
	if !strings.Contains(body, `<option value="starts-with" selected>`) {
		t.Error("the trace form does not keep the subject match mode")
	}
	if _, body = b.get("/trace?tenant=contoso&subject=x&subject_match=starts"); !strings.Contains(body, "subject_match") {
		t.Error("a bad subject match mode does not show the API's message")
	}
}
