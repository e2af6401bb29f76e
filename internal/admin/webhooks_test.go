package admin

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// exerciseWebhooks drives the webhook routes and the failure report
// address of accounts for TestOpenAPIMatchesHandlers: the tenant has the
// mailbox alice@contoso.test (alias a@), the group team@ and the account
// app@contoso.test.
func exerciseWebhooks(t *testing.T, call func(string, any, int, ...string) []byte, tenant string) {
	t.Helper()
	const W = "/api/v1/tenants/{tenant}/webhooks"
	var gen map[string]any
	json.Unmarshal(call("POST "+W, map[string]any{"url": "https://hooks.example.com/hve"}, 201, tenant), &gen)
	secret, _ := gen["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || !strings.HasPrefix(secret, gen["secret_hint"].(string)) ||
		fmt.Sprint(gen["events"]) != "[alert delivered deferred failed]" {
		t.Errorf("webhook created without a secret = %v; want a generated secret, its hint and every event", gen)
	}
	var own map[string]any
	json.Unmarshal(call("POST "+W, map[string]any{"url": "http://10.0.0.7:8080/x", "secret": "my-own-secret-1234", "events": []string{"Failed", "alert"}},
		201, tenant), &own)
	if _, ok := own["secret"]; ok || fmt.Sprint(own["events"]) != "[alert failed]" {
		t.Errorf("webhook with its own secret = %v; want the secret not echoed and the events in order", own)
	}
	call("POST "+W, map[string]any{"url": "ftp://hooks.example.com"}, 400, tenant)
	call("POST "+W, map[string]any{"url": "https://h.example", "secret": "short"}, 400, tenant)
	call("POST "+W, map[string]any{"url": "https://h.example", "events": []string{"bounced"}}, 400, tenant)
	call("POST "+W, map[string]any{"url": "https://h.example"}, 404, "nope")
	list := call("GET "+W, nil, 200, tenant)
	if strings.Contains(string(list), secret) || strings.Contains(string(list), "my-own-secret-1234") {
		t.Errorf("the webhook list shows a secret: %s", list)
	}
	call("DELETE "+W+"/{id}", nil, 204, tenant, fmt.Sprint(gen["id"]))
	call("DELETE "+W+"/{id}", nil, 404, tenant, fmt.Sprint(gen["id"]))
	call("DELETE "+W+"/{id}", nil, 400, tenant, "x")

	const A = "/api/v1/tenants/{tenant}/accounts/{address}"
	var acc map[string]any
	json.Unmarshal(call("PATCH "+A, map[string]any{"failure_report_to": "A@contoso.test"}, 200, tenant, "app@contoso.test"), &acc)
	if acc["failure_report_to"] != "alice@contoso.test" {
		t.Errorf("failure_report_to by alias = %v, want the mailbox's primary address", acc["failure_report_to"])
	}
	call("PATCH "+A, map[string]any{"failure_report_to": "team@contoso.test"}, 200, tenant, "app@contoso.test")
	call("PATCH "+A, map[string]any{"failure_report_to": "app@contoso.test"}, 400, tenant, "app@contoso.test")
	call("PATCH "+A, map[string]any{"failure_report_to": "someone@example.com"}, 400, tenant, "app@contoso.test")
	json.Unmarshal(call("PATCH "+A, map[string]any{"failure_report_to": "none"}, 200, tenant, "app@contoso.test"), &acc)
	if acc["failure_report_to"] != "" {
		t.Errorf("failure_report_to none = %v", acc["failure_report_to"])
	}
}
