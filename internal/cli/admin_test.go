package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"hve/internal/audit"
)

func TestAdminUsersTokensAndAudit(t *testing.T) {
	n := startNode(t)
	n.ok(t, "domain", "add", "contoso.test")
	n.ok(t, "tenant", "create", "fabrikam")

	// --password-stdin is required; the password never goes on the command line.
	if r := n.run(t, "", "admin", "create", "--name", "ana", "--role", "global-admin"); r.code != 2 {
		t.Errorf("admin create without --password-stdin: exit %d %s", r.code, r.stderr)
	}
	if r := n.run(t, "a long enough password\n", "admin", "create", "--name", "tom", "--role", "tenant-admin", "--tenant", "default", "--password-stdin", "--totp"); r.code != 0 ||
		!strings.Contains(r.stdout, "created admin user tom (tenant-admin, tenant default)") || !strings.Contains(r.stdout, "otpauth://totp/") {
		t.Fatalf("admin create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.run(t, "short\n", "admin", "create", "--name", "x", "--role", "reader", "--password-stdin"); r.code != 1 || !strings.Contains(r.stderr, "12 characters") {
		t.Errorf("short password: exit %d %s", r.code, r.stderr)
	}
	if out := n.ok(t, "admin", "list"); !strings.Contains(out, "tom") || !strings.Contains(out, "tenant-admin") {
		t.Errorf("admin list:\n%s", out)
	}
	out := n.ok(t, "admin", "token", "create", "--user", "tom", "--name", "laptop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "hvea_") {
		t.Fatalf("token create:\n%s", out)
	}

	// As tom: a tenant admin of default sees only default, and may not
	// touch fabrikam.
	tom := map[string]string{"HVE_SERVER": n.url, "HVE_TOKEN": token}
	if r := n.runEnv(t, tom, "", "admin", "whoami"); r.code != 0 || !strings.Contains(r.stdout, "tom (tenant-admin, tenant default)") {
		t.Errorf("whoami: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.runEnv(t, tom, "", "tenant", "list"); r.code != 0 || strings.Contains(r.stdout, "fabrikam") {
		t.Errorf("tenant list as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.runEnv(t, tom, "", "account", "create", "--name", "App", "--address", "app@contoso.test"); r.code != 0 {
		t.Errorf("account create as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.runEnv(t, tom, "", "domain", "add", "fabrikam.test", "--tenant", "fabrikam"); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
		t.Errorf("domain add in another tenant as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := n.runEnv(t, tom, "", "admin", "list"); r.code != 1 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("admin list as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	// tom's own tokens, and the audit log of his tenant (he has no
	// access to the whole log, so hve audit falls back to it).
	if r := n.runEnv(t, tom, "", "admin", "token", "list"); r.code != 0 || !strings.Contains(r.stdout, "laptop") {
		t.Errorf("token list as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r := n.runEnv(t, tom, "", "audit", "--json", "--actor", "tom")
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil || r.code != 0 {
		t.Fatalf("audit as tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if len(entries) != 1 || entries[0].Action != "account.create" || entries[0].Via != "cli" || entries[0].Tenant != "default" {
		t.Errorf("tom's audit entries = %+v", entries)
	}

	// The whole log, as the bootstrap token.
	out = n.ok(t, "audit", "--since", "1h")
	for _, want := range []string{"admin-token", "tenant.create", "admin-user.create", "admin-token.create", "account.create"} {
		if !strings.Contains(out, want) {
			t.Errorf("hve audit lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "a long enough password") {
		t.Error("the audit log shows a password")
	}
	n.ok(t, "admin", "set", "tom", "--enabled", "false")
	if r := n.runEnv(t, tom, "", "tenant", "list"); r.code != 1 || !strings.Contains(r.stderr, "disabled") {
		t.Errorf("disabled tom: %d %s%s", r.code, r.stdout, r.stderr)
	}
	n.ok(t, "admin", "token", "remove", "1", "--user", "tom")
	n.ok(t, "admin", "remove", "tom")
	if r := n.run(t, "", "admin", "token", "list"); r.code != 1 || !strings.Contains(r.stderr, "not an admin user") {
		t.Errorf("token list as the bootstrap token: %d %s", r.code, r.stderr)
	}
}
