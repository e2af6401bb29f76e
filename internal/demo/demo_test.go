package demo_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"hve/internal/demo"
	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/store"
	"hve/internal/store/sqlite"
)

// openStore opens a fresh store with the default tenant, as hve serve
// leaves it on first start.
func openStore(t *testing.T) (store.Store, directory.Tenant) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	ten, err := st.CreateTenant(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	return st, ten
}

// snapshot describes everything the default tenant holds, for comparing
// before and after.
func snapshot(t *testing.T, st store.Store, tenantID int64) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	domains, err := st.Domains(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := st.Mailboxes(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	accs, err := st.Accounts(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := st.Groups(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "domains %+v\nmailboxes %+v\naccounts %+v\ngroups %+v\n", domains, mbs, accs, groups)
	for _, a := range accs {
		fmt.Fprintf(&b, "hash of %s: %s\n", a.Address, a.PasswordHash)
	}
	return b.String()
}

func memberAddrs(g directory.Group) []string {
	var out []string
	for _, m := range g.Members {
		out = append(out, m.Address)
	}
	slices.Sort(out)
	return out
}

func TestSeedCreatesTheDemoOrganisationOnce(t *testing.T) {
	ctx := context.Background()
	st, ten := openStore(t)

	pw, err := demo.Seed(ctx, st)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if len(pw) < 16 {
		t.Errorf("Seed returned password %q; want a generated one of at least 16 characters", pw)
	}

	dom, err := st.DomainByName(ctx, demo.Domain)
	if err != nil || dom.TenantID != ten.ID || dom.Type != directory.Authoritative {
		t.Errorf("domain %s = %+v, %v; want an authoritative domain of the default tenant", demo.Domain, dom, err)
	}
	if demo.Domain != "contoso.test" {
		t.Errorf("demo domain is %s, want contoso.test", demo.Domain)
	}

	for _, p := range []string{"alice", "bob", "carol", "dave"} {
		a := p + "@" + demo.Domain
		mb, err := st.MailboxByAddress(ctx, a)
		if err != nil || mb.TenantID != ten.ID || mb.DisplayName == "" {
			t.Errorf("mailbox %s = %+v, %v; want a mailbox with a display name", a, mb, err)
		}
	}

	team := "hr-team@" + demo.Domain
	want := map[string][]string{
		team:       {"alice@" + demo.Domain, "bob@" + demo.Domain},
		demo.Group: {"carol@" + demo.Domain, "dave@" + demo.Domain, team},
	}
	groups, err := st.Groups(ctx, ten.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, g := range groups {
		got[g.Address] = memberAddrs(g)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups and their members:\n got %v\nwant %v", got, want)
	}
	if e, err := st.Lookup(ctx, team); err != nil || e.Kind != directory.KindGroup {
		t.Errorf("%s looks up as %+v, %v; want the nested group", team, e, err)
	}

	acc, err := st.AccountByAddress(ctx, demo.Account)
	if err != nil {
		t.Fatalf("account %s: %v", demo.Account, err)
	}
	if !acc.Enabled || acc.TenantID != ten.ID {
		t.Errorf("account %+v; want it enabled in the default tenant", acc)
	}
	if acc.ReplyTo != team {
		t.Errorf("account reply-to %q, want %s", acc.ReplyTo, team)
	}
	if err := password.Verify(acc.PasswordHash, pw); err != nil {
		t.Errorf("the returned password does not match the stored hash: %v", err)
	}
	if err := password.Verify(acc.PasswordHash, pw+"x"); err == nil {
		t.Error("the stored hash accepts a wrong password")
	}

	// A second Seed (a restart with --demo) changes nothing.
	before := snapshot(t, st, ten.ID)
	pw2, err := demo.Seed(ctx, st)
	if err != nil || pw2 != "" {
		t.Fatalf("second Seed = %q, %v; want \"\", nil", pw2, err)
	}
	if after := snapshot(t, st, ten.ID); after != before {
		t.Errorf("second Seed changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	acc2, err := st.AccountByAddress(ctx, demo.Account)
	if err != nil || password.Verify(acc2.PasswordHash, pw) != nil {
		t.Errorf("after the second Seed the first password no longer signs in (%v)", err)
	}
}

func TestSeedLeavesAnOrganisationAlone(t *testing.T) {
	ctx := context.Background()
	st, ten := openStore(t)
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: ten.ID, Name: "fabrikam.test", Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, st, ten.ID)
	pw, err := demo.Seed(ctx, st)
	if err != nil || pw != "" {
		t.Fatalf("Seed on a tenant with a domain = %q, %v; want \"\", nil", pw, err)
	}
	if after := snapshot(t, st, ten.ID); after != before {
		t.Errorf("Seed changed a tenant that had a domain:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := st.DomainByName(ctx, demo.Domain); err == nil {
		t.Errorf("Seed added %s to a tenant that was not empty", demo.Domain)
	}
}

// line returns the one line of out that contains marker, with continuation
// lines (ending in a backslash) joined.
func line(t *testing.T, out, marker string) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	var found []string
	for i := 0; i < len(lines); i++ {
		if !strings.Contains(lines[i], marker) {
			continue
		}
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		found = append(found, l)
	}
	if len(found) != 1 {
		t.Fatalf("want one line with %q in the instructions, found %d:\n%s", marker, len(found), out)
	}
	return found[0]
}

func wantAll(t *testing.T, what, s string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

func TestPrintHowTo(t *testing.T) {
	const (
		smtpAddr = "127.0.0.1:2599"
		pw       = "Gen3ratedPassw0rdXyz"
		client   = "go run ./cmd/hve --server http://127.0.0.1:8099 --data /tmp/hve demo"
	)
	var b bytes.Buffer
	demo.PrintHowTo(&b, smtpAddr, pw, client)
	out := b.String()

	swaks := line(t, out, "swaks --server")
	wantAll(t, "swaks line", swaks, "swaks --server "+smtpAddr, "--tls", "--auth-user "+demo.Account, "'"+pw+"'",
		"--from "+demo.Account, "--to "+demo.Group)

	py := line(t, out, "python3 -c")
	wantAll(t, "python3 line", py, "import smtplib", "smtplib.SMTP('127.0.0.1', 2599)", "s.starttls()",
		"s.login('"+demo.Account+"', '"+pw+"')", "s.sendmail('"+demo.Account+"', ['"+demo.Group+"']")

	wantAll(t, "mailbox command", line(t, out, "mailbox messages"), client+" mailbox messages alice@"+demo.Domain)
	wantAll(t, "trace command", line(t, out, " trace "), client+" trace --sender "+demo.Account)
	wantAll(t, "instructions", out, smtpAddr, demo.Account, pw, demo.Group)
	if strings.Contains(out, "PASSWORD") {
		t.Errorf("with a password given, the instructions still show the placeholder:\n%s", out)
	}
}

func TestPrintHowToWithoutPassword(t *testing.T) {
	const client = "go run ./cmd/hve"
	var b bytes.Buffer
	demo.PrintHowTo(&b, "127.0.0.1:2587", "", client)
	out := b.String()
	wantAll(t, "swaks line", line(t, out, "swaks --server"), "'PASSWORD'")
	wantAll(t, "python3 line", line(t, out, "python3 -c"), "'PASSWORD'")
	wantAll(t, "instructions", out, "printed at the first start", client+" account set "+demo.Account+" --password-stdin")
	wantAll(t, "python3 line", line(t, out, "python3 -c"), "smtplib.SMTP('127.0.0.1', 2587)")
}
