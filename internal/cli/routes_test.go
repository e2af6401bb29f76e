package cli_test

import (
	"strings"
	"testing"
)

func TestRouteCommands(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "relay.test", "--type", "internal-relay")

	r := n.run(t, "s3cret-relay\n", "route", "set", "relay.test", "--type", "smtp", "--target", "mx.relay.test:25", "--tls", "required",
		"--auth-user", "hve", "--auth-password-stdin", "--max-connections", "4")
	if r.code != 0 || !strings.Contains(r.stdout, "hve (password set)") || !strings.Contains(r.stdout, "mx.relay.test:25") {
		t.Fatalf("route set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	n.ok(t, "route", "set", "*", "--type", "lmtp", "--target", "unix:/run/dovecot/lmtp")
	out := n.ok(t, "route", "list")
	for _, w := range []string{"relay.test", "smtp", "mx.relay.test:25", "required", "lmtp", "unix:/run/dovecot/lmtp"} {
		if !strings.Contains(out, w) {
			t.Errorf("route list lacks %q:\n%s", w, out)
		}
	}
	if js := n.ok(t, "route", "list", "--json"); strings.Contains(out+js, "s3cret") || !strings.Contains(js, `"auth_password_set": true`) {
		t.Errorf("route list shows the password, or not that one is set:\n%s", js)
	}

	// Another setting without the password keeps the stored one.
	n.ok(t, "route", "set", "relay.test", "--type", "smtp", "--target", "mx2.relay.test:25", "--tls", "required", "--auth-user", "hve")
	tenant, err := n.srv.Store.TenantByName(t.Context(), "default")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := n.srv.Store.Routes(t.Context(), tenant.ID)
	if err != nil || len(routes) != 2 || routes[1].AuthPassword != "s3cret-relay" || routes[1].Target != "mx2.relay.test:25" {
		t.Errorf("stored routes = %+v, %v; want the new target and the kept password", routes, err)
	}

	for _, c := range []struct {
		args []string
		code int
		word string
	}{
		{[]string{"route", "set", "nope.test", "--type", "local"}, 1, "not an accepted domain"},
		{[]string{"route", "set", "relay.test"}, 2, "--type is required"},
		{[]string{"route", "set", "relay.test", "--type", "smtp"}, 1, "needs a target"},
		{[]string{"route", "set", "relay.test", "--type", "smtp", "--target", "mx:25", "--auth-password-stdin"}, 2, "needs --auth-user"},
	} {
		r := n.run(t, "pw\n", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.word) {
			t.Errorf("hve %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.word)
		}
	}

	if out := n.ok(t, "route", "remove", "*"); !strings.Contains(out, "removed the route of *") {
		t.Errorf("route remove: %q", out)
	}
	if r := n.run(t, "", "route", "remove", "*"); r.code != 1 || !strings.Contains(r.stderr, "no route for *") {
		t.Errorf("removing a removed route: exit %d, %q", r.code, r.stderr)
	}
}
