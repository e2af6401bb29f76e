package directory

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Endpoint names one of the two SMTP submission endpoints.
type Endpoint string

const (
	// EndpointHVE is the High Volume Email endpoint: HVE accounts only.
	EndpointHVE Endpoint = "hve"
	// EndpointClient is the standard client endpoint: mailboxes only.
	EndpointClient Endpoint = "client"
)

// ParseEndpoint checks s names an endpoint.
func ParseEndpoint(s string) (Endpoint, error) {
	switch Endpoint(s) {
	case EndpointHVE, EndpointClient:
		return Endpoint(s), nil
	}
	return "", fmt.Errorf("endpoint %q is not one of hve, client", s)
}

// Retirement schedules the end of basic authentication on one endpoint.
// Zero times mean "not set".
type Retirement struct {
	// SunsetAt: from this time on every basic sign-in is refused.
	SunsetAt time.Time `json:"sunset_at,omitzero"`
	// RampStart and RampEnd: between them a share of basic sign-ins is
	// refused that rises linearly from 0 at RampStart to 100% at RampEnd.
	RampStart time.Time `json:"ramp_start,omitzero"`
	RampEnd   time.Time `json:"ramp_end,omitzero"`
}

// Settings are a tenant's access settings (spec section 1).
type Settings struct {
	// SecurityDefaults refuses every basic sign-in of the tenant.
	SecurityDefaults bool `json:"security_defaults"`
	// DefaultAuthPolicy names the authentication policy of identities that
	// have none of their own; empty means none (basic auth allowed).
	DefaultAuthPolicy string `json:"default_auth_policy"`
	// ClientSMTPAuthDisabled refuses basic sign-ins on the standard client
	// endpoint (Set-TransportConfig -SmtpClientAuthenticationDisabled).
	ClientSMTPAuthDisabled bool `json:"client_smtp_auth_disabled"`
	// Retirement of basic auth, per endpoint.
	HVEBasicAuth    Retirement `json:"hve_basic_auth"`
	ClientBasicAuth Retirement `json:"client_basic_auth"`

	// The tenant's limits (limits.go; docs/limits.md).
	// DailyRecipientLimit caps the internal envelope recipients of all the
	// tenant's HVE accounts together per UTC day; 0 means unlimited.
	DailyRecipientLimit int64 `json:"daily_recipient_limit"`
	// MaxHVEAccounts caps how many HVE accounts the tenant may have; 0
	// means unlimited.
	MaxHVEAccounts int64 `json:"max_hve_accounts"`
	// ExternalSending says whether HVE accounts may send outside the
	// accepted domains; "" means ExternalOff.
	ExternalSending ExternalSending `json:"external_sending"`
	// OutboundSmarthost (host:port) is where external mail leaves; empty
	// means none, and external recipients are then refused.
	OutboundSmarthost string `json:"outbound_smarthost"`
	// PricePerMillion is the estimated cost of a million delivered
	// recipients, for usage reports; a new tenant has
	// DefaultPricePerMillion.
	PricePerMillion float64 `json:"price_per_million"`
}

// AuthPolicy is an authentication policy: which legacy protocols an
// identity may use with basic authentication.
type AuthPolicy struct {
	ID                 int64     `json:"id"`
	TenantID           int64     `json:"-"`
	Name               string    `json:"name"`
	AllowBasicAuthSMTP bool      `json:"allow_basic_auth_smtp"`
	CreatedAt          time.Time `json:"created_at"`
}

// SecurityGroup is a group used to target Conditional Access policies. Its
// members are HVE accounts and mailboxes (by primary address).
type SecurityGroup struct {
	ID        int64     `json:"id"`
	TenantID  int64     `json:"-"`
	Name      string    `json:"name"`
	Members   []Member  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// CAState is a Conditional Access policy's state.
type CAState string

// The states of a Conditional Access policy.
const (
	CAOn         CAState = "on"
	CAOff        CAState = "off"
	CAReportOnly CAState = "report-only"
)

// CAGrant is what a Conditional Access policy demands of a sign-in it
// applies to. SMTP sign-ins can satisfy neither MFA nor a compliant device,
// so every grant blocks them.
type CAGrant string

// The grants of a Conditional Access policy.
const (
	GrantBlock                  CAGrant = "block"
	GrantRequireMFA             CAGrant = "require-mfa"
	GrantRequireCompliantDevice CAGrant = "require-compliant-device"
)

// ClientApp is the kind of client a Conditional Access policy targets.
type ClientApp string

// The client apps of Conditional Access.
const (
	// Legacy clients sign in with basic authentication (LOGIN, PLAIN).
	Legacy ClientApp = "legacy"
	// Modern clients sign in with OAuth (XOAUTH2, OAUTHBEARER).
	Modern ClientApp = "modern"
)

// AllUsers in IncludeUsers or ExcludeUsers means every identity.
const AllUsers = "all"

// BuiltInBlockLegacy is the name of the policy every new tenant gets, in
// report-only, like the managed policy admins know from Entra ID.
const BuiltInBlockLegacy = "Block legacy authentication"

// CAPolicy is a Conditional Access policy, evaluated at every sign-in.
type CAPolicy struct {
	ID       int64   `json:"id"`
	TenantID int64   `json:"-"`
	Name     string  `json:"name"`
	State    CAState `json:"state"`
	Grant    CAGrant `json:"grant"`
	// ClientApps the policy applies to; empty means both.
	ClientApps []ClientApp `json:"client_apps"`
	// IncludeUsers and ExcludeUsers hold primary addresses or AllUsers.
	IncludeUsers []string `json:"include_users"`
	ExcludeUsers []string `json:"exclude_users"`
	// IncludeGroups and ExcludeGroups hold security group names.
	IncludeGroups []string `json:"include_groups"`
	ExcludeGroups []string `json:"exclude_groups"`
	// IncludeNetworks and ExcludeNetworks are CIDR prefixes (IPv4 or IPv6);
	// an empty IncludeNetworks means any network.
	IncludeNetworks []string  `json:"include_networks"`
	ExcludeNetworks []string  `json:"exclude_networks"`
	CreatedAt       time.Time `json:"created_at"`
}

// Validate checks the policy's fields and puts its prefixes in canonical
// form.
func (p *CAPolicy) Validate() error {
	if strings.TrimSpace(p.Name) == "" {
		return fmt.Errorf("a Conditional Access policy needs a name")
	}
	switch p.State {
	case CAOn, CAOff, CAReportOnly:
	default:
		return fmt.Errorf("state %q is not one of on, off, report-only", p.State)
	}
	switch p.Grant {
	case GrantBlock, GrantRequireMFA, GrantRequireCompliantDevice:
	default:
		return fmt.Errorf("grant %q is not one of block, require-mfa, require-compliant-device", p.Grant)
	}
	for _, c := range p.ClientApps {
		if c != Legacy && c != Modern {
			return fmt.Errorf("client app %q is not one of legacy, modern", c)
		}
	}
	if len(p.IncludeUsers) == 0 && len(p.IncludeGroups) == 0 {
		return fmt.Errorf("policy %q includes nobody: give --include-users (all or addresses) or --include-groups", p.Name)
	}
	for _, list := range [][]string{p.IncludeUsers, p.ExcludeUsers} {
		for i, u := range list {
			if u == AllUsers {
				continue
			}
			a, err := NormalizeAddress(u)
			if err != nil {
				return fmt.Errorf("user %q: %w", u, err)
			}
			list[i] = a
		}
	}
	for _, list := range [][]string{p.IncludeNetworks, p.ExcludeNetworks} {
		for i, n := range list {
			pfx, err := ParseNetwork(n)
			if err != nil {
				return err
			}
			list[i] = pfx.String()
		}
	}
	return nil
}

// ParseNetwork parses a CIDR prefix; a bare address is a /32 or /128.
func ParseNetwork(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("network %q is neither a CIDR prefix nor an IP address", s)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %q is not a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32", s)
	}
	return p.Masked(), nil
}

// Permission is an API permission an app registration can be granted.
type Permission string

// MailSend lets an app's tokens send mail through an HVE account.
const MailSend Permission = "Mail.Send"

// App is an app registration: an application that gets OAuth tokens with
// the client-credentials grant.
type App struct {
	ID       int64  `json:"-"`
	TenantID int64  `json:"-"`
	Name     string `json:"name"`
	// AppID is the application (client) id, the client_id of the token
	// request. ObjectID is the id of the app's service principal, the other
	// id an admin may have at hand; either identifies the app.
	AppID    string `json:"app_id"`
	ObjectID string `json:"object_id"`
	// Permissions granted with admin consent.
	Permissions []Permission `json:"permissions"`
	Secrets     []AppSecret  `json:"secrets"`
	CreatedAt   time.Time    `json:"created_at"`
}

// Has reports whether the app was granted p.
func (a *App) Has(p Permission) bool {
	for _, q := range a.Permissions {
		if q == p {
			return true
		}
	}
	return false
}

// AppSecret is one client secret of an app. Only its hash is kept; Hint is
// its first characters, so an admin can tell secrets apart.
type AppSecret struct {
	ID        int64     `json:"id"`
	Hint      string    `json:"hint"`
	Hash      string    `json:"-"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// MaxAllowedApps is how many apps an HVE account's allowed list may hold.
const MaxAllowedApps = 10

// Issuer is an external OpenID Connect issuer a tenant trusts for OAuth
// sign-ins (the organisation's existing identity provider).
type Issuer struct {
	ID       int64 `json:"id"`
	TenantID int64 `json:"-"`
	// URL is the issuer identifier: the token's iss claim, and the base of
	// its /.well-known/openid-configuration.
	URL string `json:"url"`
	// Audience the token's aud claim must hold.
	Audience string `json:"audience"`
	// Role the token's roles (or scp) claim must hold; Mail.Send by default.
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// SigningKey is one of hve's own token-signing keys. Tokens are signed with
// the newest; older keys stay published until their tokens have expired.
type SigningKey struct {
	ID         string    `json:"kid"`
	Algorithm  string    `json:"alg"`
	PrivatePEM []byte    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	// RetiredAt: the key no longer signs; zero while it is the current one.
	RetiredAt time.Time `json:"retired_at,omitzero"`
}
