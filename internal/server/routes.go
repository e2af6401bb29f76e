package server

import (
	"context"
	"fmt"
	"log/slog"

	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/store"
)

// applyConfigRoutes writes the configuration file's [[route]] tables to the
// store. They run at every start, so the file wins over a route the admin
// API set for the same tenant and domain since the last start.
func applyConfigRoutes(ctx context.Context, st store.Store, routes []config.Route, log *slog.Logger) error {
	for _, cr := range routes {
		r, err := cr.DirectoryRoute()
		if err != nil {
			return fmt.Errorf("config [[route]]: %w", err)
		}
		name := cr.Tenant
		if name == "" {
			name = directory.DefaultTenant
		}
		t, err := st.TenantByName(ctx, name)
		if err != nil {
			return fmt.Errorf("config [[route]] for %s: tenant %q: %w", cr.Domain, name, err)
		}
		r.TenantID = t.ID
		if _, err := st.SetRoute(ctx, r); err != nil {
			return fmt.Errorf("config [[route]] for %s: %w", cr.Domain, err)
		}
		// The route's LogValue leaves the password out.
		log.Info("route from the configuration file", "tenant", t.Name, "route", r)
	}
	return nil
}
