package access

import (
	"net/netip"
	"strings"
	"testing"

	"hve/internal/directory"
)

func TestEvaluateCA(t *testing.T) {
	const me = "app@acme.example"
	base := func(mod func(p *directory.CAPolicy)) directory.CAPolicy {
		p := directory.CAPolicy{Name: "p", State: directory.CAOn, Grant: directory.GrantBlock, IncludeUsers: []string{directory.AllUsers}}
		if mod != nil {
			mod(&p)
		}
		return p
	}
	v4 := netip.MustParseAddr("10.1.2.3")
	v6 := netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:10.1.2.3")
	subject := func(mod func(s *Subject)) Subject {
		s := Subject{Address: me, Groups: []string{"Apps", "printers"}, ClientApp: directory.Legacy, ClientIP: v4}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	tests := []struct {
		name    string
		policy  directory.CAPolicy
		subject Subject
		applies bool
		why     string // a substring of Why
	}{
		{"all users", base(nil), subject(nil), true, "all users included"},
		{"off", base(func(p *directory.CAPolicy) { p.State = directory.CAOff }), subject(nil), false, "policy is off"},
		{"report-only applies", base(func(p *directory.CAPolicy) { p.State = directory.CAReportOnly }), subject(nil), true, "all users"},
		{"unknown state is off", base(func(p *directory.CAPolicy) { p.State = "maybe" }), subject(nil), false, "treated as off"},
		{"user included", base(func(p *directory.CAPolicy) { p.IncludeUsers = []string{"x@acme.example", me} }), subject(nil), true, "user included"},
		{"user included, other case", base(func(p *directory.CAPolicy) { p.IncludeUsers = []string{"APP@Acme.Example"} }), subject(nil), true, "user included"},
		{"user not included", base(func(p *directory.CAPolicy) { p.IncludeUsers = []string{"x@acme.example"} }), subject(nil), false, "user not included"},
		{"group included", base(func(p *directory.CAPolicy) { p.IncludeUsers = nil; p.IncludeGroups = []string{"printers"} }), subject(nil), true, `group "printers" included`},
		{"group included, other case", base(func(p *directory.CAPolicy) { p.IncludeUsers = nil; p.IncludeGroups = []string{"apps"} }), subject(nil), true, `group "apps" included`},
		{"group not included", base(func(p *directory.CAPolicy) { p.IncludeUsers = nil; p.IncludeGroups = []string{"staff"} }), subject(nil), false, "user not included"},
		{"no groups", base(func(p *directory.CAPolicy) { p.IncludeUsers = nil; p.IncludeGroups = []string{"apps"} }), subject(func(s *Subject) { s.Groups = nil }), false, "user not included"},
		{"excluded user", base(func(p *directory.CAPolicy) { p.ExcludeUsers = []string{me} }), subject(nil), false, "excluded user"},
		{"all excluded", base(func(p *directory.CAPolicy) { p.ExcludeUsers = []string{directory.AllUsers} }), subject(nil), false, "all users excluded"},
		{"excluded group", base(func(p *directory.CAPolicy) { p.ExcludeGroups = []string{"printers"} }), subject(nil), false, `group "printers" excluded`},
		{"exclusion wins over user inclusion", base(func(p *directory.CAPolicy) { p.IncludeUsers = []string{me}; p.ExcludeGroups = []string{"Apps"} }), subject(nil), false, "excluded"},
		{"other user excluded", base(func(p *directory.CAPolicy) { p.ExcludeUsers = []string{"x@acme.example"} }), subject(nil), true, "all users"},
		{"legacy targeted", base(func(p *directory.CAPolicy) { p.ClientApps = []directory.ClientApp{directory.Legacy} }), subject(nil), true, "client app legacy"},
		{"modern not targeted", base(func(p *directory.CAPolicy) { p.ClientApps = []directory.ClientApp{directory.Legacy} }), subject(func(s *Subject) { s.ClientApp = directory.Modern }), false, "client app modern not targeted"},
		{"both targeted", base(func(p *directory.CAPolicy) { p.ClientApps = []directory.ClientApp{directory.Legacy, directory.Modern} }), subject(func(s *Subject) { s.ClientApp = directory.Modern }), true, "client app modern"},
		{"v4 network included", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"192.0.2.0/24", "10.0.0.0/8"} }), subject(nil), true, "network 10.0.0.0/8 included"},
		{"v4 network not included", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"192.0.2.0/24"} }), subject(nil), false, "not in an included network"},
		{"v4 network excluded", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"10.0.0.0/8"} }), subject(nil), false, "network 10.0.0.0/8 excluded"},
		{"bare v4 address excluded", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"10.1.2.3"} }), subject(nil), false, "network 10.1.2.3/32 excluded"},
		{"mapped client in v4 network", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"10.0.0.0/8"} }), subject(func(s *Subject) { s.ClientIP = mapped }), true, "network 10.0.0.0/8 included"},
		{"mapped client excluded by v4 network", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"10.0.0.0/8"} }), subject(func(s *Subject) { s.ClientIP = mapped }), false, "excluded"},
		{"v4 client in mapped network", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"::ffff:10.0.0.0/104"} }), subject(nil), true, "network 10.0.0.0/8 included"},
		{"v6 network included", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"2001:db8::/32"} }), subject(func(s *Subject) { s.ClientIP = v6 }), true, "network 2001:db8::/32 included"},
		{"v6 network excluded", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"2001:db8::/48"} }), subject(func(s *Subject) { s.ClientIP = v6 }), false, "network 2001:db8::/48 excluded"},
		{"v6 client, v4 network", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"10.0.0.0/8"} }), subject(func(s *Subject) { s.ClientIP = v6 }), false, "not in an included network"},
		{"v4 client, v6 network", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"2001:db8::/32"} }), subject(nil), false, "not in an included network"},
		{"unknown IP is in no included network", base(func(p *directory.CAPolicy) { p.IncludeNetworks = []string{"0.0.0.0/0"} }), subject(func(s *Subject) { s.ClientIP = netip.Addr{} }), false, "(unknown)"},
		{"unknown IP is in no excluded network", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"0.0.0.0/0"} }), subject(func(s *Subject) { s.ClientIP = netip.Addr{} }), true, "any network"},
		{"malformed network skipped", base(func(p *directory.CAPolicy) { p.ExcludeNetworks = []string{"bogus", "10.0.0.0/8"} }), subject(nil), false, "10.0.0.0/8 excluded"},
		{"require-mfa applies", base(func(p *directory.CAPolicy) { p.Grant = directory.GrantRequireMFA }), subject(nil), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EvaluateCA([]directory.CAPolicy{tt.policy}, tt.subject)
			if len(got) != 1 {
				t.Fatalf("got %d verdicts, want 1", len(got))
			}
			v := got[0]
			if v.Applies != tt.applies || !strings.Contains(v.Why, tt.why) {
				t.Errorf("applies=%v why=%q; want applies=%v, why containing %q", v.Applies, v.Why, tt.applies, tt.why)
			}
			if v.Policy != tt.policy.Name || v.State != tt.policy.State || v.Grant != tt.policy.Grant {
				t.Errorf("verdict %+v does not name the policy", v)
			}
			wantBlocks := tt.applies && tt.policy.State == directory.CAOn
			if v.Blocks() != wantBlocks || v.WouldBlock() != (tt.applies && tt.policy.State == directory.CAReportOnly) {
				t.Errorf("Blocks()=%v WouldBlock()=%v for %+v", v.Blocks(), v.WouldBlock(), v)
			}
		})
	}
}

func TestEvaluateCAKeepsOrder(t *testing.T) {
	ps := []directory.CAPolicy{
		{Name: "b", State: directory.CAOn, Grant: directory.GrantBlock, IncludeUsers: []string{"all"}},
		{Name: "a", State: directory.CAOff, Grant: directory.GrantBlock, IncludeUsers: []string{"all"}},
	}
	got := EvaluateCA(ps, Subject{Address: "x@y.example", ClientApp: directory.Modern})
	if len(got) != 2 || got[0].Policy != "b" || got[1].Policy != "a" || !got[0].Applies || got[1].Applies {
		t.Fatalf("EvaluateCA = %+v", got)
	}
	if got := EvaluateCA(nil, Subject{}); len(got) != 0 {
		t.Fatalf("EvaluateCA(nil) = %+v", got)
	}
}
