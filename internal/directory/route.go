package directory

import (
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// RouteType says where the mail of a domain is delivered.
type RouteType string

// The route types.
const (
	// RouteLocal delivers into the embedded mailbox store (the default).
	RouteLocal RouteType = "local"
	// RouteSMTP relays to a next hop over SMTP.
	RouteSMTP RouteType = "smtp"
	// RouteLMTP hands mail to an LMTP server (Dovecot, Cyrus) over TCP or
	// a unix socket.
	RouteLMTP RouteType = "lmtp"
)

// ParseRouteType checks s names a route type.
func ParseRouteType(s string) (RouteType, error) {
	switch RouteType(s) {
	case RouteLocal, RouteSMTP, RouteLMTP:
		return RouteType(s), nil
	}
	return "", fmt.Errorf("route type %q is not one of local, smtp, lmtp", s)
}

// TLSMode says whether a relay uses STARTTLS to the next hop.
type TLSMode string

// The TLS modes.
const (
	// TLSRequired: the next hop must offer STARTTLS and present a
	// certificate that verifies (system roots, or the route's CA file)
	// for the target host name; otherwise nothing is sent and the
	// recipients are deferred.
	TLSRequired TLSMode = "required"
	// TLSOpportunistic: STARTTLS when the next hop offers it, without
	// verifying its certificate (like Postfix's "may"); plain text when it
	// does not or the handshake fails.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSNone never starts TLS.
	TLSNone TLSMode = "none"
)

// ParseTLSMode checks s names a TLS mode.
func ParseTLSMode(s string) (TLSMode, error) {
	switch TLSMode(s) {
	case TLSRequired, TLSOpportunistic, TLSNone:
		return TLSMode(s), nil
	}
	return "", fmt.Errorf("tls %q is not one of required, opportunistic, none", s)
}

// DefaultRouteDomain is the domain of a tenant's default route: it applies
// to the tenant's domains without a route of their own.
const DefaultRouteDomain = "*"

// DefaultMaxConnections is a relay route's connection limit when it sets
// none.
const DefaultMaxConnections = 10

// MaxMaxConnections bounds a route's connection limit.
const MaxMaxConnections = 1000

// Route says how mail for one accepted domain of a tenant (or, with domain
// "*", for every domain of the tenant without its own route) is delivered.
// Without any route, delivery is local.
type Route struct {
	TenantID int64 `json:"-"`
	// Domain is an accepted domain or DefaultRouteDomain.
	Domain string    `json:"domain"`
	Type   RouteType `json:"type"`
	// Target is host:port for smtp and lmtp, or unix:/path for lmtp over
	// a unix socket; empty for local.
	Target string  `json:"target"`
	TLS    TLSMode `json:"tls"`
	// AuthUser and AuthPassword sign in to the next hop with AUTH PLAIN.
	// The password is kept as given, because it must be sent; it is never
	// shown (AuthPasswordSet says whether there is one) nor logged.
	AuthUser        string `json:"auth_user"`
	AuthPassword    string `json:"-"`
	AuthPasswordSet bool   `json:"auth_password_set"`
	// ClientCert and ClientKey are PEM files of a client certificate
	// presented to the next hop; CAFile is a PEM file of the certificate
	// authorities that the next hop's certificate must chain to (system
	// roots when empty). Files are read on the node that delivers.
	ClientCert string `json:"client_cert"`
	ClientKey  string `json:"client_key"`
	CAFile     string `json:"ca_file"`
	// MaxConnections caps the connections open to the next hop at once.
	MaxConnections int       `json:"max_connections"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// LogValue keeps the password out of logs.
func (r Route) LogValue() slog.Value {
	return slog.GroupValue(slog.String("domain", r.Domain), slog.String("type", string(r.Type)), slog.String("target", r.Target),
		slog.String("tls", string(r.TLS)), slog.String("auth_user", r.AuthUser))
}

// IsRelay reports whether the route hands mail to a next hop.
func (r Route) IsRelay() bool { return r.Type == RouteSMTP || r.Type == RouteLMTP }

// Network returns the network and address to dial for the route's target.
func (r Route) Network() (network, address string) {
	if path, ok := strings.CutPrefix(r.Target, "unix:"); ok {
		return "unix", path
	}
	return "tcp", r.Target
}

// Host is the target's host name (for certificate checks), or "" for a
// unix socket.
func (r Route) Host() string {
	network, addr := r.Network()
	if network == "unix" {
		return ""
	}
	host, _, _ := net.SplitHostPort(addr)
	return host
}

// IsLoopback reports whether the target is on this machine (a unix socket,
// localhost or a loopback address), where a password may travel without
// TLS.
func (r Route) IsLoopback() bool {
	network, _ := r.Network()
	if network == "unix" {
		return true
	}
	host := r.Host()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Normalize checks a route and fills in defaults: the TLS mode
// (opportunistic for smtp, none for lmtp and local) and the connection
// limit. It returns an error that says what to fix.
func (r *Route) Normalize() error {
	if r.Domain != DefaultRouteDomain {
		d, err := NormalizeDomain(r.Domain)
		if err != nil {
			return fmt.Errorf("route domain: %v (or * for the default route)", err)
		}
		r.Domain = d
	}
	if _, err := ParseRouteType(string(r.Type)); err != nil {
		return err
	}
	if r.TLS != "" {
		if _, err := ParseTLSMode(string(r.TLS)); err != nil {
			return err
		}
	}
	if r.AuthPassword != "" && r.AuthUser == "" {
		return fmt.Errorf("route %s: an auth password needs an auth user", r.Domain)
	}
	if r.AuthUser != "" && r.AuthPassword == "" {
		return fmt.Errorf("route %s: auth user %s needs a password", r.Domain, r.AuthUser)
	}
	if strings.ContainsAny(r.AuthUser+r.AuthPassword, "\x00\r\n") {
		return fmt.Errorf("route %s: the auth user and password must not hold NUL, CR or LF", r.Domain)
	}
	if (r.ClientCert == "") != (r.ClientKey == "") {
		return fmt.Errorf("route %s: a client certificate needs both a certificate and a key file", r.Domain)
	}
	if r.Type == RouteLocal {
		if r.Target != "" || r.AuthUser != "" || r.ClientCert != "" || r.CAFile != "" || r.TLS != "" && r.TLS != TLSNone {
			return fmt.Errorf("route %s: a local route takes no target, TLS, auth or certificates", r.Domain)
		}
		r.TLS, r.MaxConnections = TLSNone, 0
		return nil
	}
	if err := r.checkTarget(); err != nil {
		return err
	}
	network, _ := r.Network()
	if r.TLS == "" {
		r.TLS = TLSNone
		if r.Type == RouteSMTP {
			r.TLS = TLSOpportunistic
		}
	}
	if network == "unix" && r.TLS != TLSNone {
		return fmt.Errorf("route %s: TLS over a unix socket makes no sense; use --tls none", r.Domain)
	}
	if r.TLS == TLSNone && (r.ClientCert != "" || r.CAFile != "") {
		return fmt.Errorf("route %s: certificates need TLS; use --tls required or opportunistic", r.Domain)
	}
	if r.AuthUser != "" && r.TLS == TLSNone && !r.IsLoopback() {
		return fmt.Errorf("route %s: AUTH without TLS would send the password in clear text to %s; use --tls required", r.Domain, r.Target)
	}
	for _, f := range []string{r.ClientCert, r.ClientKey, r.CAFile} {
		if f != "" && !filepath.IsAbs(f) {
			return fmt.Errorf("route %s: file %q must be an absolute path (it is read by the delivering node)", r.Domain, f)
		}
	}
	switch {
	case r.MaxConnections == 0:
		r.MaxConnections = DefaultMaxConnections
	case r.MaxConnections < 0 || r.MaxConnections > MaxMaxConnections:
		return fmt.Errorf("route %s: max connections %d is not between 1 and %d", r.Domain, r.MaxConnections, MaxMaxConnections)
	}
	return nil
}

// checkTarget checks a relay route's target: host:port, or for LMTP also
// unix:/absolute/path.
func (r *Route) checkTarget() error {
	if r.Target == "" {
		if r.Type == RouteLMTP {
			return fmt.Errorf("route %s: an lmtp route needs a target (host:port or unix:/path)", r.Domain)
		}
		return fmt.Errorf("route %s: an smtp route needs a target (host:port)", r.Domain)
	}
	if path, ok := strings.CutPrefix(r.Target, "unix:"); ok {
		if r.Type != RouteLMTP {
			return fmt.Errorf("route %s: only lmtp routes may use a unix socket", r.Domain)
		}
		if !filepath.IsAbs(path) {
			return fmt.Errorf("route %s: unix socket %q must be an absolute path", r.Domain, path)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(r.Target)
	if err != nil || host == "" || strings.ContainsAny(host, " /") {
		return fmt.Errorf("route %s: target %q is not host:port", r.Domain, r.Target)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("route %s: target %q has no valid port", r.Domain, r.Target)
	}
	r.Target = strings.ToLower(r.Target)
	return nil
}
