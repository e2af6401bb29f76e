package directory

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestRouteNormalize(t *testing.T) {
	good := []struct {
		in       Route
		tls      TLSMode
		maxConns int
	}{
		{Route{Domain: "Contoso.Test.", Type: RouteSMTP, Target: "MX.contoso.test:25"}, TLSOpportunistic, DefaultMaxConnections},
		{Route{Domain: "*", Type: RouteLMTP, Target: "unix:/run/dovecot/lmtp"}, TLSNone, DefaultMaxConnections},
		{Route{Domain: "a.test", Type: RouteLMTP, Target: "127.0.0.1:24", MaxConnections: 4}, TLSNone, 4},
		{Route{Domain: "a.test", Type: RouteLocal}, TLSNone, 0},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx.a.test:587", TLS: TLSRequired, AuthUser: "u", AuthPassword: "p",
			ClientCert: "/etc/hve/c.pem", ClientKey: "/etc/hve/k.pem", CAFile: "/etc/hve/ca.pem"}, TLSRequired, DefaultMaxConnections},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "127.0.0.1:25", TLS: TLSNone, AuthUser: "u", AuthPassword: "p"}, TLSNone, DefaultMaxConnections},
	}
	for _, c := range good {
		r := c.in
		if err := r.Normalize(); err != nil {
			t.Errorf("Normalize(%+v): %v", c.in, err)
			continue
		}
		if r.TLS != c.tls || r.MaxConnections != c.maxConns || r.Domain != strings.TrimSuffix(strings.ToLower(c.in.Domain), ".") {
			t.Errorf("Normalize(%+v) = %+v; want tls %s, max connections %d", c.in, r, c.tls, c.maxConns)
		}
	}
	bad := []struct {
		in   Route
		word string
	}{
		{Route{Domain: "a.test", Type: "x400"}, "not one of"},
		{Route{Domain: "a", Type: RouteLocal}, "fully qualified"},
		{Route{Domain: "a.test", Type: RouteSMTP}, "needs a target"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx.a.test"}, "host:port"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx.a.test:0"}, "port"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "unix:/x"}, "only lmtp"},
		{Route{Domain: "a.test", Type: RouteLMTP, Target: "unix:relative"}, "absolute"},
		{Route{Domain: "a.test", Type: RouteLMTP, Target: "unix:/x", TLS: TLSOpportunistic}, "unix socket"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", TLS: "maybe"}, "not one of"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", AuthUser: "u"}, "needs a password"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", AuthPassword: "p"}, "needs an auth user"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", TLS: TLSNone, AuthUser: "u", AuthPassword: "p"}, "clear text"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", ClientCert: "/c.pem"}, "both"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", TLS: TLSNone, CAFile: "/ca.pem"}, "need TLS"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", CAFile: "ca.pem"}, "absolute"},
		{Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", MaxConnections: 5000}, "between 1 and"},
		{Route{Domain: "a.test", Type: RouteLocal, Target: "mx:25"}, "local route"},
	}
	for _, c := range bad {
		r := c.in
		err := r.Normalize()
		if err == nil || !strings.Contains(err.Error(), c.word) {
			t.Errorf("Normalize(%+v) = %v; want an error saying %q", c.in, err, c.word)
		}
	}
}

func TestRouteNeverLogsItsPassword(t *testing.T) {
	r := Route{Domain: "a.test", Type: RouteSMTP, Target: "mx:25", AuthUser: "u", AuthPassword: "hunter2-secret"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("route", "route", r)
	if strings.Contains(b.String(), "hunter2") || !strings.Contains(b.String(), "mx:25") {
		t.Errorf("logged route: %s", b.String())
	}
	if s := fmt.Sprintf("%v", r.LogValue()); strings.Contains(s, "hunter2") {
		t.Errorf("LogValue shows the password: %s", s)
	}
}
