package server_test

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"hve/internal/config"
	"hve/internal/server"
	"hve/internal/trace"
)

// nextHop is a minimal SMTP server that accepts everything and records the
// recipients it was given.
type nextHop struct {
	addr  string
	mu    sync.Mutex
	rcpts []string
}

func startNextHop(t *testing.T) *nextHop {
	t.Helper()
	h := &nextHop{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &nextHopSession{h: h}, nil }))
	srv.Domain = "next-hop.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *nextHop) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.rcpts...)
}

type nextHopSession struct {
	h     *nextHop
	rcpts []string
}

func (s *nextHopSession) Reset()                               { s.rcpts = nil }
func (s *nextHopSession) Logout() error                        { return nil }
func (s *nextHopSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *nextHopSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *nextHopSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.rcpts = append(s.h.rcpts, s.rcpts...)
	return nil
}

// TestConfigRouteRelaysInternalRelayRecipients: a [[route]] of the
// configuration file sends an internal-relay domain's unknown recipients to
// its next hop, end to end from SMTP submission.
func TestConfigRouteRelaysInternalRelayRecipients(t *testing.T) {
	t.Parallel()
	hop := startNextHop(t)
	n := startNodeWith(t, func(c *config.Config) {
		// The domain is added by seed, after the start: a route may come
		// before its domain.
		c.Routes = []config.Route{{Domain: relayDomain, Type: "smtp", Target: hop.addr, TLS: "none"}}
	})
	routes, err := n.srv.Store.Routes(context.Background(), n.tenant.ID)
	if err != nil || len(routes) != 1 || routes[0].Target != hop.addr {
		t.Fatalf("routes after start = %+v, %v", routes, err)
	}
	c := n.signIn()
	rcpt := "somebody@" + relayDomain
	code, text := c.send(appAddr, []string{rcpt, "alice@" + domain}, message("hi", "From: "+appAddr, "Subject: relayed"))
	qid := queueID(t, code, text)
	evs := n.waitTrace(trace.Query{QueueID: qid}, "two Delivered events", func(evs []trace.Event) bool {
		return countEvents(evs, trace.EventDelivered) == 2
	})
	for _, e := range evs {
		if e.Event == trace.EventDelivered && e.Recipient == rcpt && !strings.Contains(e.Detail, "next hop smtp "+hop.addr) {
			t.Errorf("Delivered event of %s: %q, want it to name the next hop", rcpt, e.Detail)
		}
	}
	if got := hop.received(); len(got) != 1 || got[0] != rcpt {
		t.Errorf("the next hop got %v, want %s only (alice is local)", got, rcpt)
	}
	if len(n.mailboxMessages("alice@"+domain)) != 1 {
		t.Error("alice's local copy is missing")
	}
}

func TestConfigRouteOfUnknownTenantStopsStart(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.SMTP.Addr, cfg.Client.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Routes = []config.Route{{Tenant: "nope", Domain: "a.example", Type: "local"}}
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("a route of an unknown tenant did not stop the start")
	}
	if !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "a.example") {
		t.Errorf("error %q does not name the tenant and the domain", err)
	}
}
