package webui

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSignInThrottleAcrossNodes: two admin centers over one store (two
// nodes behind a load balancer) share the count of failed sign-ins.
func TestSignInThrottleAcrossNodes(t *testing.T) {
	f := newFixture(t)
	ui2, err := New(Config{API: f.ui.cfg.API, Store: f.st, Counters: f.st, Log: f.ui.cfg.Log, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	node2 := *f
	node2.ui, node2.srv = ui2, httptest.NewServer(ui2)
	t.Cleanup(node2.srv.Close)

	b1, b2 := f.browser(t), node2.browser(t)
	for i := range 5 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		if resp, _ := b.trySignIn("global", "wrong password", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	for i, b := range []*browser{b1, b2} {
		if resp, _ := b.trySignIn("global", testPassword, ""); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("node %d: the right password after 5 failures on two nodes: %d, want 429", i+1, resp.StatusCode)
		}
	}
	f.now = f.now.Add(17 * time.Minute)
	if resp, body := b2.trySignIn("global", testPassword, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the window: %d %s", resp.StatusCode, body)
	}
}

// TestSignInSuccessClearsFailures: a sign-in clears the name's failures,
// on every node.
func TestSignInSuccessClearsFailures(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	for range 4 {
		b.trySignIn("reader", "wrong password", "")
	}
	b.signIn("reader")
	other := f.browser(t)
	for i := range 4 {
		if resp, _ := other.trySignIn("reader", "wrong password", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d after a sign-in: %d, want 401 (the sign-in did not clear the failures)", i+1, resp.StatusCode)
		}
	}
	other.signIn("reader")
}
