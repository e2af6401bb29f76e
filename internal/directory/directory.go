// Package directory defines the objects an organisation's directory holds:
// tenants, accepted domains, mailboxes, HVE accounts and distribution groups,
// and the rules for their addresses.
//
// It holds no storage code; see package store for that.
package directory

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
)

// DefaultTenant is the name of the tenant that exists from first start.
const DefaultTenant = "default"

// Tenant is one organisation. Every other object belongs to exactly one tenant.
type Tenant struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Settings  Settings  `json:"settings"`
}

// DomainType says what happens to recipients of a domain that the directory
// does not know.
type DomainType string

const (
	// Authoritative domains have every recipient in the directory: an unknown
	// recipient is refused at RCPT.
	Authoritative DomainType = "authoritative"
	// InternalRelay domains share their address space with another mail
	// system: unknown recipients are passed to the next hop.
	InternalRelay DomainType = "internal-relay"
)

// ParseDomainType checks s names a domain type; the empty string means
// authoritative.
func ParseDomainType(s string) (DomainType, error) {
	switch DomainType(s) {
	case "", Authoritative:
		return Authoritative, nil
	case InternalRelay:
		return InternalRelay, nil
	}
	return "", fmt.Errorf("domain type %q is not one of authoritative, internal-relay", s)
}

// Domain is an accepted domain: a domain the tenant owns.
type Domain struct {
	ID       int64      `json:"id"`
	TenantID int64      `json:"-"`
	Name     string     `json:"name"`
	Type     DomainType `json:"type"`
}

// Mailbox is a person or shared mailbox that can receive mail.
type Mailbox struct {
	ID          int64     `json:"id"`
	TenantID    int64     `json:"-"`
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Address     string    `json:"address"`
	Aliases     []string  `json:"aliases"`
	HasPassword bool      `json:"has_password"`
	CreatedAt   time.Time `json:"created_at"`
	// PasswordHash is optional: a mailbox signs in only to the standard
	// endpoint, and on the HVE endpoint it is told to use an HVE account.
	PasswordHash string `json:"-"`
	// AuthPolicy names the mailbox's own authentication policy; empty means
	// the tenant's default.
	AuthPolicy string `json:"auth_policy"`
	// TokensValidFrom: tokens issued before it are refused, and sessions
	// signed in before it are closed.
	TokensValidFrom time.Time `json:"tokens_valid_from,omitzero"`
	// ConvertedFromHVE is set when an HVE account was turned into this
	// mailbox; the HVE endpoint then answers it with AUTH2003.
	ConvertedFromHVE bool `json:"converted_from_hve"`
}

// Account is an HVE account: a send-only identity for an application or
// device. It has no mailbox, cannot receive and keeps no Sent Items.
type Account struct {
	ID          int64     `json:"id"`
	TenantID    int64     `json:"-"`
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	Address     string    `json:"address"`
	Aliases     []string  `json:"aliases"`
	ReplyTo     string    `json:"reply_to"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// PasswordHash is an argon2id hash in PHC string format; never shown.
	PasswordHash string `json:"-"`
	// AuthPolicy names the account's own authentication policy; empty means
	// the tenant's default.
	AuthPolicy string `json:"auth_policy"`
	// TokensValidFrom: tokens issued before it are refused, and sessions
	// signed in before it are closed (Set-User -STSRefreshTokensValidFrom).
	TokensValidFrom time.Time `json:"tokens_valid_from,omitzero"`
	// AllowedApps holds the app ids (client ids) whose tokens may sign in
	// as this account; at most MaxAllowedApps.
	AllowedApps []string `json:"allowed_apps"`
	// AllowedNetworks, when not empty, are the only source networks (CIDR)
	// the account may sign in from.
	AllowedNetworks []string `json:"allowed_networks"`
	// DailyRecipientLimit is the account's own cap of envelope recipients
	// (internal and external) per UTC day; 0 means none.
	DailyRecipientLimit int64 `json:"daily_recipient_limit"`
	// WarnAt is a percentage of DailyRecipientLimit: when the day's count
	// reaches it, the limits engine tells its Observer (once a day); 0
	// means no warning.
	WarnAt int `json:"warn_at"`
	// FailureReportTo is an internal address (a mailbox or group of the
	// tenant) that gets a plain-text report when a recipient of the
	// account's message fails for good; empty sends none, as HVE does.
	FailureReportTo string `json:"failure_report_to"`
}

// SendsAs reports whether addr is the account's primary address or one of its
// aliases, the only addresses it may use as envelope or header sender.
func (a *Account) SendsAs(addr string) bool {
	addr = strings.ToLower(addr)
	if addr == a.Address {
		return true
	}
	for _, alias := range a.Aliases {
		if addr == alias {
			return true
		}
	}
	return false
}

// Group is a distribution group. It counts as one envelope recipient and is
// expanded to its members at delivery; groups may nest.
type Group struct {
	ID        int64     `json:"id"`
	TenantID  int64     `json:"-"`
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	Members   []Member  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// Kind is the kind of object an address belongs to.
type Kind string

// The kinds of objects that own addresses.
const (
	KindMailbox Kind = "mailbox"
	KindAccount Kind = "account"
	KindGroup   Kind = "group"
)

// Member is one member of a group: a mailbox or another group.
type Member struct {
	Kind    Kind   `json:"kind"`
	ID      int64  `json:"-"`
	Address string `json:"address"`
}

// Entry is what an address resolves to.
type Entry struct {
	TenantID int64
	Kind     Kind
	ID       int64
	// Address is the owner's primary address (the looked-up one may be an alias).
	Address string
}

// ErrInvalidAddress is wrapped by NormalizeAddress errors.
var ErrInvalidAddress = errors.New("invalid address")

// NormalizeAddress checks that s is a plain addr-spec (local@domain, no
// display name) and returns it in lower case, the form every lookup uses.
func NormalizeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidAddress)
	}
	// net/mail takes any non-ASCII rune (RFC 6532), C1 controls and
	// Unicode spaces such as U+0085 included; no real address has them.
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
		return "", fmt.Errorf("%w: %q holds white space or control characters", ErrInvalidAddress, s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", fmt.Errorf("%w: %q is not of the form local@domain", ErrInvalidAddress, s)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", fmt.Errorf("%w: %q is not of the form local@domain", ErrInvalidAddress, s)
	}
	return strings.ToLower(s), nil
}

// DomainOf returns the domain part of a normalized address.
func DomainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// NormalizeDomain checks that s is a plausible DNS domain name and returns it
// in lower case without a trailing dot.
func NormalizeDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") {
		return "", fmt.Errorf("domain %q is not a fully qualified domain name", s)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("domain %q has an invalid label %q", s, label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "", fmt.Errorf("domain %q has an invalid character %q", s, r)
			}
		}
	}
	return d, nil
}
