package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"hve/internal/store"
)

func TestWebhookCommands(t *testing.T) {
	n := startNode(t)
	seed(t, n)

	out := n.ok(t, "webhook", "add", "https://hooks.example.com/hve")
	if !strings.Contains(out, "added webhook 1: https://hooks.example.com/hve (alert,delivered,deferred,failed)") ||
		!strings.Contains(out, "generated signing secret (shown this once): whsec_") {
		t.Errorf("webhook add without a secret:\n%s", out)
	}
	out = n.ok(t, "webhook", "add", "http://10.0.0.9:8080/x", "--secret", "my-webhook-secret-1", "--events", "alert,failed")
	if strings.Contains(out, "secret") || !strings.Contains(out, "(alert,failed)") {
		t.Errorf("webhook add with a secret:\n%s", out)
	}
	if r := n.run(t, "from-stdin-secret-42\n", "webhook", "add", "https://h3.example", "--secret-stdin", "--events", "delivered"); r.code != 0 {
		t.Errorf("webhook add --secret-stdin: exit %d %s", r.code, r.stderr)
	}
	list := n.ok(t, "webhook", "list")
	for _, w := range []string{"https://hooks.example.com/hve", "whsec_", "http://10.0.0.9:8080/x", "alert,failed", "my-w...", "from..."} {
		if !strings.Contains(list, w) {
			t.Errorf("webhook list lacks %q:\n%s", w, list)
		}
	}
	if strings.Contains(list, "my-webhook-secret-1") {
		t.Errorf("webhook list shows a secret:\n%s", list)
	}
	var hooks []store.Webhook
	if err := json.Unmarshal([]byte(n.ok(t, "webhook", "list", "--json")), &hooks); err != nil || len(hooks) != 3 {
		t.Fatalf("webhook list --json = %+v, %v", hooks, err)
	}
	tenant, _ := n.srv.Store.TenantByName(t.Context(), "default")
	stored, _ := n.srv.Store.Webhooks(t.Context(), tenant.ID)
	if len(stored) != 3 || stored[1].Secret != "my-webhook-secret-1" || stored[2].Secret != "from-stdin-secret-42" {
		t.Errorf("stored webhooks = %+v", stored)
	}

	for _, c := range []struct {
		args []string
		code int
		word string
	}{
		{[]string{"webhook", "add", "ftp://x"}, 1, "http"},
		{[]string{"webhook", "add", "https://x.example", "--events", "bounced"}, 1, "bounced"},
		{[]string{"webhook", "add", "https://x.example", "--secret", "short"}, 1, "16 characters"},
		{[]string{"webhook", "add"}, 2, "URL"},
		{[]string{"webhook", "remove", "99"}, 1, "no webhook 99"},
	} {
		r := n.run(t, "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.word) {
			t.Errorf("hve %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.word)
		}
	}
	if out := n.ok(t, "webhook", "remove", "1"); !strings.Contains(out, "removed webhook 1") {
		t.Errorf("webhook remove: %q", out)
	}

	// The failure report address of an account.
	n.ok(t, "account", "create", "--name", "app", "--address", "app@contoso.test")
	out = n.ok(t, "account", "set", "app@contoso.test", "--failure-report-to", "al@contoso.test")
	if !strings.Contains(out, "failure report to") || !strings.Contains(out, "alice@contoso.test") {
		t.Errorf("account set --failure-report-to:\n%s", out)
	}
	if r := n.run(t, "", "account", "set", "app@contoso.test", "--failure-report-to", "app@contoso.test"); r.code != 1 ||
		!strings.Contains(r.stderr, "not a mailbox or distribution group") {
		t.Errorf("a report address that is an account: exit %d %s", r.code, r.stderr)
	}
	n.ok(t, "account", "set", "app@contoso.test", "--failure-report-to", "none")
	if acc, _ := n.srv.Store.AccountByAddress(t.Context(), "app@contoso.test"); acc.FailureReportTo != "" {
		t.Errorf("after none: %q", acc.FailureReportTo)
	}
}
