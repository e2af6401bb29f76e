package access

import (
	"fmt"
	"net/netip"
	"strings"

	"hve/internal/directory"
)

// Subject is who signs in, as Conditional Access sees it.
type Subject struct {
	// Address is the identity's primary address.
	Address string
	// Groups names the security groups the identity is a direct member of.
	Groups []string
	// ClientApp is Legacy for basic sign-ins and Modern for OAuth.
	ClientApp directory.ClientApp
	// ClientIP is the source address; the zero Addr (unknown) is inside no
	// network.
	ClientIP netip.Addr
}

// CAVerdict is what one Conditional Access policy makes of a Subject.
type CAVerdict struct {
	Policy string            `json:"policy"`
	State  directory.CAState `json:"state"`
	Grant  directory.CAGrant `json:"grant"`
	// Applies: the policy targets this sign-in. Whether it blocks depends on
	// State: on blocks, report-only only reports, off never applies.
	Applies bool `json:"applies"`
	// Why says which condition decided, e.g. "excluded user",
	// "network 10.0.0.0/8 excluded", "client app modern not targeted".
	Why string `json:"why"`
}

// Blocks reports whether the verdict refuses the sign-in. Every grant
// blocks SMTP, which can satisfy neither MFA nor device compliance.
func (v CAVerdict) Blocks() bool { return v.Applies && v.State == directory.CAOn }

// WouldBlock reports whether a report-only policy would have refused the
// sign-in.
func (v CAVerdict) WouldBlock() bool { return v.Applies && v.State == directory.CAReportOnly }

// EvaluateCA evaluates every policy for s, in the order given. It is pure:
// the sign-in check and the web UI's "what if" evaluator share it.
//
// A policy applies when its state is not off, its client apps are empty or
// hold s.ClientApp, s is included (IncludeUsers holds "all" or s.Address,
// or IncludeGroups one of s.Groups) and not excluded (ExcludeUsers holds
// "all" or s.Address, or ExcludeGroups one of s.Groups), s.ClientIP is in
// one of IncludeNetworks (empty means any network) and in none of
// ExcludeNetworks. IPv4-mapped IPv6 addresses and prefixes compare as IPv4.
func EvaluateCA(policies []directory.CAPolicy, s Subject) []CAVerdict {
	out := make([]CAVerdict, 0, len(policies))
	for _, p := range policies {
		applies, why := evaluateOne(p, s)
		out = append(out, CAVerdict{Policy: p.Name, State: p.State, Grant: p.Grant, Applies: applies, Why: why})
	}
	return out
}

func evaluateOne(p directory.CAPolicy, s Subject) (bool, string) {
	if p.State == directory.CAOff {
		return false, "policy is off"
	}
	if p.State != directory.CAOn && p.State != directory.CAReportOnly {
		// Validate refuses other states; a policy that reaches here anyway
		// is treated as off rather than guessed at.
		return false, fmt.Sprintf("unknown state %q, treated as off", p.State)
	}
	if len(p.ClientApps) > 0 && !containsClientApp(p.ClientApps, s.ClientApp) {
		return false, fmt.Sprintf("client app %s not targeted", s.ClientApp)
	}

	included := ""
	switch {
	case containsFold(p.IncludeUsers, directory.AllUsers):
		included = "all users included"
	case s.Address != "" && containsFold(p.IncludeUsers, s.Address):
		included = "user included"
	default:
		if g, ok := firstCommon(p.IncludeGroups, s.Groups); ok {
			included = fmt.Sprintf("group %q included", g)
		}
	}
	if included == "" {
		return false, "user not included"
	}
	switch {
	case containsFold(p.ExcludeUsers, directory.AllUsers):
		return false, "all users excluded"
	case s.Address != "" && containsFold(p.ExcludeUsers, s.Address):
		return false, "excluded user"
	}
	if g, ok := firstCommon(p.ExcludeGroups, s.Groups); ok {
		return false, fmt.Sprintf("group %q excluded", g)
	}

	ip := s.ClientIP.Unmap()
	network := "any network"
	if len(p.IncludeNetworks) > 0 {
		pfx, ok := inNetworks(p.IncludeNetworks, ip)
		if !ok {
			return false, fmt.Sprintf("client IP %s not in an included network", ipString(ip))
		}
		network = fmt.Sprintf("network %s included", pfx)
	}
	if pfx, ok := inNetworks(p.ExcludeNetworks, ip); ok {
		return false, fmt.Sprintf("network %s excluded", pfx)
	}
	return true, fmt.Sprintf("%s, client app %s, %s", included, s.ClientApp, network)
}

func containsClientApp(apps []directory.ClientApp, c directory.ClientApp) bool {
	for _, a := range apps {
		if a == c {
			return true
		}
	}
	return false
}

// containsFold compares case-insensitively: addresses are stored in lower
// case, but a hand-edited policy should not silently miss.
func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// firstCommon returns the first name of policy that is also in have.
func firstCommon(policy, have []string) (string, bool) {
	for _, g := range policy {
		if containsFold(have, strings.TrimSpace(g)) {
			return g, true
		}
	}
	return "", false
}

// inNetworks returns the first of the CIDR prefixes that holds ip (already
// unmapped). Entries that do not parse are skipped: Validate keeps them out
// of the store.
func inNetworks(networks []string, ip netip.Addr) (netip.Prefix, bool) {
	if !ip.IsValid() {
		return netip.Prefix{}, false
	}
	for _, n := range networks {
		pfx, err := parsePrefix(n)
		if err != nil {
			continue
		}
		if pfx.Contains(ip) {
			return pfx, true
		}
	}
	return netip.Prefix{}, false
}

// parsePrefix parses a CIDR prefix or bare address, turning an IPv4-mapped
// IPv6 prefix (::ffff:10.0.0.0/104) into its IPv4 form so that it matches
// unmapped client addresses.
func parsePrefix(s string) (netip.Prefix, error) {
	pfx, err := directory.ParseNetwork(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := pfx.Addr(); a.Is4In6() {
		bits := pfx.Bits() - 96
		if bits < 0 {
			// Wider than the mapped range: it holds all of IPv4 and more;
			// as an IPv4 prefix that is 0.0.0.0/0.
			bits = 0
		}
		return netip.PrefixFrom(a.Unmap(), bits).Masked(), nil
	}
	return pfx, nil
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return "(unknown)"
	}
	return ip.String()
}
