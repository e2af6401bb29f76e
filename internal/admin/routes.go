package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"hve/internal/adminauth"
	"hve/internal/directory"
	"hve/internal/store"
)

// deliveryRoutes registers the routes that say how each accepted domain's
// mail is delivered (local, or relayed over SMTP or LMTP).
func (a *API) deliveryRoutes(t func(string, tenantHandler)) {
	const base = "/api/v1/tenants/{tenant}/routes"
	t("GET "+base, a.listRoutes)
	t("PUT "+base+"/{domain}", a.setRoute)
	t("DELETE "+base+"/{domain}", a.removeRoute)
}

func (a *API) listRoutes(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	list, err := a.store.Routes(r.Context(), t.ID)
	if err != nil {
		return err
	}
	// Passwords stay in the store: directory.Route never encodes them.
	// By domain, "*" first (it sorts before every domain's first byte).
	return writePage(w, r, list, func(rt directory.Route) string { return rt.Domain })
}

// routeDomain reads the {domain} path segment: "*" (the default route) or
// a domain name.
func routeDomain(r *http.Request) (string, error) {
	d := r.PathValue("domain")
	if d == directory.DefaultRouteDomain {
		return d, nil
	}
	n, err := directory.NormalizeDomain(d)
	if err != nil {
		return "", badRequest("%v (or * for the default route)", err)
	}
	return n, nil
}

func (a *API) setRoute(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	var req struct {
		Type     string `json:"type"`
		Target   string `json:"target"`
		TLS      string `json:"tls"`
		AuthUser string `json:"auth_user"`
		// AuthPassword left out keeps the stored password if auth_user
		// is unchanged, so that changing another setting does not need
		// the secret again.
		AuthPassword   *string `json:"auth_password"`
		ClientCert     string  `json:"client_cert"`
		ClientKey      string  `json:"client_key"`
		CAFile         string  `json:"ca_file"`
		MaxConnections int     `json:"max_connections"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	domain, err := routeDomain(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// Certificate, key and CA files are paths on the node: naming them
	// would let a tenant admin point hve at any file it can read, so
	// only a global admin may set them.
	nodeFiles := req.ClientCert != "" || req.ClientKey != "" || req.CAFile != ""
	global := isGlobalAdmin(ctx)
	if nodeFiles && !global {
		return &apiError{http.StatusForbidden, "forbidden", "client_cert, client_key and ca_file are file paths on the node: only a global admin may set them; leave them out (a global admin's settings are kept)"}
	}
	if domain != directory.DefaultRouteDomain {
		// The store also takes domains not accepted yet (for the
		// configuration file); here that is most likely a typo.
		d, err := a.store.DomainByName(ctx, domain)
		if err != nil || d.TenantID != t.ID {
			return badRequest("%s is not an accepted domain of tenant %s; add it first (hve domain add %s)", domain, t.Name, domain)
		}
	}
	route := directory.Route{TenantID: t.ID, Domain: domain, Type: directory.RouteType(req.Type), Target: req.Target,
		TLS: directory.TLSMode(req.TLS), AuthUser: req.AuthUser, ClientCert: req.ClientCert, ClientKey: req.ClientKey,
		CAFile: req.CAFile, MaxConnections: req.MaxConnections}
	list, err := a.store.Routes(ctx, t.ID)
	if err != nil {
		return err
	}
	for _, old := range list {
		if old.Domain != domain {
			continue
		}
		if req.AuthPassword == nil && req.AuthUser != "" && old.AuthUser == req.AuthUser {
			route.AuthPassword = old.AuthPassword
		}
		// A tenant admin's change keeps the files a global admin set:
		// it may not set them, so it must not be able to clear them.
		if !global {
			route.ClientCert, route.ClientKey, route.CAFile = old.ClientCert, old.ClientKey, old.CAFile
		}
	}
	if req.AuthPassword != nil {
		route.AuthPassword = *req.AuthPassword
	}
	route, err = a.store.SetRoute(ctx, route)
	if err != nil {
		return err
	}
	a.audit(r, t, "route.set", fmt.Sprintf("%s %s %s", route.Domain, route.Type, route.Target))
	writeJSON(w, http.StatusOK, route)
	return nil
}

// isGlobalAdmin reports whether the request's principal is an admin of
// every tenant (a global admin user or the bootstrap token).
func isGlobalAdmin(ctx context.Context) bool {
	p, ok := PrincipalFrom(ctx)
	return ok && p.Role == adminauth.GlobalAdmin && p.Tenant == ""
}

func (a *API) removeRoute(w http.ResponseWriter, r *http.Request, t directory.Tenant) error {
	domain, err := routeDomain(r)
	if err != nil {
		return err
	}
	if err := a.store.RemoveRoute(r.Context(), t.ID, domain); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: no route for %s; without one its mail is delivered locally (or by the default route *)", store.ErrNotFound, domain)
		}
		return err
	}
	a.audit(r, t, "route.remove", domain)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
