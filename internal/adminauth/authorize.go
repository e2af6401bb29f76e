package adminauth

import (
	"net/http"
	"strings"
)

// Decision is the outcome of Authorize.
type Decision int

// The decisions.
const (
	// Allow: the principal may call the route.
	Allow Decision = iota
	// Forbidden: the role may not do this (HTTP 403).
	Forbidden
	// Hidden: the route is about a tenant outside the principal's scope.
	// It is answered like a tenant that does not exist (HTTP 404), so that
	// a tenant admin cannot even learn which other tenants exist.
	Hidden
)

// TenantParam is the path wildcard that names a tenant in every
// tenant-scoped admin API route.
const TenantParam = "{tenant}"

// TenantListPattern lists tenants; every role may call it, and the handler
// shows a scoped principal only its own tenant.
const TenantListPattern = "GET /api/v1/tenants"

// SelfPrefix is the path of routes about the caller itself (who am I, my
// own API tokens), which every role may read.
const SelfPrefix = "/api/v1/me"

// traceSegments name the parts of the API a trace-reader may read: message
// trace and (once they exist) usage and reports.
var traceSegments = []string{"trace", "reports", "usage"}

// Authorize decides whether p may call the route pattern ("METHOD /path",
// as registered with http.ServeMux) for the tenant named in the path (""
// when the route names none).
//
// The rule goes by method and path only, so routes added later are covered
// without a list to maintain:
//
//   - GET and HEAD read; every other method changes something.
//   - A route whose path has {tenant} is about that tenant: a principal
//     scoped to another tenant gets Hidden. Other routes are global: a
//     scoped principal may call only the tenant list and its own /me
//     routes.
//   - global-admin and tenant-admin may read and change; reader may read;
//     trace-reader may read routes with a trace, reports or usage segment.
//   - Every principal may read /api/v1/me...; those that may change
//     anything may also change their own /me routes (their API tokens).
func Authorize(p Principal, pattern, tenant string) Decision {
	method, path, _ := strings.Cut(pattern, " ")
	read := method == http.MethodGet || method == http.MethodHead
	if path == SelfPrefix || strings.HasPrefix(path, SelfPrefix+"/") {
		if read || p.Role.CanWrite() {
			return Allow
		}
		return Forbidden
	}
	if strings.Contains(path, TenantParam) {
		if p.Tenant != "" && p.Tenant != tenant {
			return Hidden
		}
	} else if pattern != TenantListPattern && p.Tenant != "" {
		return Forbidden
	}
	switch p.Role {
	case GlobalAdmin, TenantAdmin:
		// A tenant admin is always scoped, so it got here only for its own
		// tenant or the tenant list.
		if p.Role == TenantAdmin && p.Tenant == "" {
			return Forbidden
		}
		return Allow
	case Reader:
		if read {
			return Allow
		}
	case TraceReader:
		if read && (pattern == TenantListPattern || IsTraceRoute(path)) {
			return Allow
		}
	}
	return Forbidden
}

// IsTraceRoute reports whether a route path is about message trace, usage
// or reports: a literal segment names one of them.
func IsTraceRoute(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		for _, s := range traceSegments {
			if seg == s {
				return true
			}
		}
	}
	return false
}
