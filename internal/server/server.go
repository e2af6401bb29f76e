// Package server wires hve's parts into one running node: the store, the
// spool, the delivery worker, the sign-in checks and the OAuth token
// service, the two SMTP endpoints (HVE and standard client) and the admin
// API.
package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"hve/internal/access"
	"hve/internal/admin"
	"hve/internal/alert"
	"hve/internal/config"
	"hve/internal/delivery"
	"hve/internal/dircache"
	"hve/internal/directory"
	"hve/internal/limits"
	"hve/internal/oauth"
	"hve/internal/queue"
	"hve/internal/report"
	"hve/internal/retention"
	"hve/internal/smtpd"
	"hve/internal/store"
	"hve/internal/store/postgres"
	"hve/internal/store/sqlite"
	"hve/internal/tlsutil"
	"hve/internal/trace"
	"hve/internal/tracetail"
	"hve/internal/usage"
	"hve/internal/webhook"
	"hve/internal/webui"
)

// Server is one running hve node.
type Server struct {
	Config config.Config
	Store  store.Store
	// SMTPAddr (the HVE endpoint), ClientAddr (the standard client
	// endpoint; nil when it is disabled) and AdminAddr are where the
	// listeners ended up (useful with port 0 in tests).
	SMTPAddr, ClientAddr, AdminAddr net.Addr
	// TokenFile holds the admin API's bearer token.
	TokenFile string
	// OAuth is the token service and verifier; its Handler belongs on the
	// admin listener, whose URL is its issuer.
	OAuth *oauth.Service
	// Access checks every sign-in of both endpoints (and diagnoses).
	Access *access.Checker
	// Alerts raises alerts (warning levels of the limits engine, the
	// anomaly rule); webhooks hear of them through the dispatcher.
	Alerts *alert.Raiser

	log *slog.Logger
	// node names this node in the revocations it publishes.
	node      string
	cancel    context.CancelFunc
	endpoint  *smtpd.Endpoint // the HVE endpoint
	client    *smtpd.Endpoint // the standard client endpoint, or nil
	http      *http.Server
	spool     *queue.Spool
	recorder  *trace.Recorder
	limits    *limits.Engine // the quotas of both endpoints
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// OpenStore opens the store the configuration names: the embedded SQLite
// store in the data directory, or a PostgreSQL database that several nodes
// share.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	switch {
	case embeddedStore(cfg):
		return sqlite.Open(ctx, cfg.Data)
	case strings.HasPrefix(cfg.Store, "postgres://"), strings.HasPrefix(cfg.Store, "postgresql://"):
		return postgres.Open(ctx, cfg.Store)
	}
	return nil, fmt.Errorf("store %q: use an empty value (embedded SQLite in the data directory) or a postgres:// URL", redactStore(cfg.Store))
}

// embeddedStore reports whether the configuration names the embedded
// store, whose data is in the data directory.
func embeddedStore(cfg config.Config) bool {
	return cfg.Store == "" || cfg.Store == "sqlite"
}

// redactStore hides the password of a store address that looks like a URL,
// for error messages.
func redactStore(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		return u.Redacted()
	}
	return addr
}

// Start opens the store and starts every listener and worker. It returns
// once the node accepts connections.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	// The data directory holds the node's own files (TLS certificate,
	// admin token) whatever the store; the embedded store makes it too.
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{Config: cfg, Store: st, log: log, TokenFile: filepath.Join(cfg.Data, "admin.token"), node: nodeID(cfg.Hostname)}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) (err error) {
	cfg := s.Config
	if err := ensureDefaultTenant(ctx, s.Store); err != nil {
		return err
	}
	if err := applyConfigRoutes(ctx, s.Store, cfg.Routes, s.log); err != nil {
		return err
	}
	tokenHash, err := s.adminToken()
	if err != nil {
		return err
	}
	tlsConfig, err := tlsutil.Config(cfg.SMTP.TLSCert, cfg.SMTP.TLSKey, cfg.Data, cfg.Hostname)
	if err != nil {
		return err
	}
	// Back-pressure: both endpoints stop accepting before the queue's
	// disk fills (a next hop down for long makes the queue grow).
	minFree, err := cfg.Queue.MinFree()
	if err != nil {
		return fmt.Errorf("[queue] %w", err)
	}
	// With PostgreSQL the queue is in the database, not in the data
	// directory: a full database disk is the store's ErrFull.
	var space *queue.SpaceGuard
	if embeddedStore(cfg) {
		space = queue.NewSpaceGuard(cfg.Data, minFree, s.log.With("part", "queue"))
	}
	keepTrace, err := cfg.Trace.RetentionPeriod()
	if err != nil {
		return fmt.Errorf("[trace] %w", err)
	}
	keepFinished, err := cfg.Queue.KeepFinishedPeriod()
	if err != nil {
		return fmt.Errorf("[queue] %w", err)
	}

	// Listeners not yet handed to a server are closed if starting fails.
	var pending []net.Listener
	defer func() {
		if err != nil {
			for _, l := range pending {
				l.Close()
			}
		}
	}()
	listen := func(what, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", what, err)
		}
		pending = append(pending, l)
		return l, nil
	}
	// The admin listener comes first: its address is the default issuer
	// of the OAuth tokens, which the sign-in checks need.
	al, err := listen("admin", cfg.Admin.Addr)
	if err != nil {
		return err
	}
	s.AdminAddr = al.Addr()
	issuer := cfg.Admin.PublicURL
	if issuer == "" {
		issuer = "http://" + s.AdminAddr.String()
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// The hot paths (SMTP sessions, sign-ins, delivery passes) read the
	// directory through a cache that starts over at every directory
	// change; the admin API reads and writes the store itself.
	dir := dircache.New(s.Store, dircache.Options{MaxAge: dirCacheMaxAge(cfg)})
	worker := delivery.NewWorker(dir, nodeID(cfg.Hostname), s.log.With("part", "delivery"))
	worker.Relay.Hostname = cfg.Hostname
	if cfg.Delivery.MaxAge > 0 {
		worker.Retry.MaxAge = cfg.Delivery.MaxAge
	}
	if cfg.Delivery.Lease > 0 {
		worker.Lease = cfg.Delivery.Lease
	}
	// The spool hands new messages to the worker: they are stored leased
	// to it and delivered from memory.
	s.spool = queue.NewSpool(s.Store, worker, s.log.With("part", "spool"))
	s.recorder = trace.NewRecorder(s.Store, s.log.With("part", "trace"))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		worker.Run(runCtx)
	}()
	// Usage metering and detailed reports work from trace, apart from the
	// paths that write it.
	// The meter and the webhook dispatcher both read every new trace
	// event; they share the reading (tracetail).
	tail := sharedTail{Store: s.Store, tail: tracetail.New(s.Store, 20000)}
	meter := usage.NewAggregator(tail, s.log.With("part", "usage"))
	reports := report.NewRunner(s.Store, nodeID(cfg.Hostname), s.log.With("part", "reports"))
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		meter.Run(runCtx)
	}()
	go func() {
		defer s.wg.Done()
		reports.Run(runCtx)
	}()
	s.startNotifications(runCtx, worker, meter, tail)
	// Trace retention runs apart from the meter and the dispatcher: both
	// read forward from their cursors, and what it deletes lies behind them.
	traceRetention := &retention.Job{What: "trace events", Delete: s.Store.PruneTrace, Keep: keepTrace,
		Log: s.log.With("part", "trace")}
	s.wg.Go(func() { traceRetention.Run(runCtx) })
	// Finished messages go after keep_finished: the failure reports read
	// a finished message's recipients shortly after it finishes.
	finishedRetention := &retention.Job{What: "finished messages", Delete: s.Store.PruneFinished, Keep: keepFinished,
		Log: s.log.With("part", "queue")}
	s.wg.Go(func() { finishedRetention.Run(runCtx) })

	s.OAuth = oauth.New(s.Store, oauth.Config{IssuerURL: issuer}, s.log.With("part", "oauth"))
	if err := s.OAuth.EnsureKey(ctx); err != nil {
		return fmt.Errorf("OAuth signing key: %w", err)
	}
	// Sign-ins read the directory through the cache only where the cache
	// is exact (the embedded store): on a shared store another node's
	// change must hold at the very next sign-in, whatever the delay of
	// its notification.
	var signIns access.Directory = s.Store
	if embeddedStore(cfg) {
		signIns = dir
	}
	s.Access = access.New(signIns, s.OAuth, s.recorder, access.Config{}, s.log.With("part", "access"))

	// One limits engine for both endpoints, over the store's counters, so
	// that quotas hold across endpoints and nodes.
	limitsLog := s.log.With("part", "limits")
	s.limits = limits.NewEngine(s.Store, limits.EngineConfig{Log: limitsLog, Observer: s.Alerts})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.limits.Run(runCtx)
	}()

	s.endpoint = smtpd.New(runCtx, smtpd.Config{
		Endpoint:        directory.EndpointHVE,
		Hostname:        cfg.Hostname,
		TLS:             tlsConfig,
		MaxRecipients:   cfg.SMTP.MaxRecipients,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		Limits:          s.limits,
		StorageLow:      space.Low,
	}, dir, s.Access, s.spool, s.recorder, s.log.With("part", "smtp"))
	sl, err := listen("SMTP", cfg.SMTP.Addr)
	if err != nil {
		return err
	}
	s.SMTPAddr = sl.Addr()
	s.serveSMTP(s.endpoint, sl)

	if cfg.Client.Addr != "" {
		s.client = smtpd.New(runCtx, smtpd.Config{
			Endpoint:          directory.EndpointClient,
			Hostname:          cfg.Hostname,
			TLS:               tlsConfig,
			MaxRecipients:     cfg.Client.MaxRecipients,
			MaxMessageBytes:   cfg.Client.MaxMessageBytes,
			MessagesPerMinute: cfg.Client.MessagesPerMinute,
			RecipientsPerDay:  cfg.Client.RecipientsPerDay,
			MaxConnections:    cfg.Client.MaxConnections,
			Limits:            s.limits,
			StorageLow:        space.Low,
		}, dir, s.Access, s.spool, s.recorder, s.log.With("part", "smtp-client"))
		cl, err := listen("client SMTP", cfg.Client.Addr)
		if err != nil {
			return err
		}
		s.ClientAddr = cl.Addr()
		s.serveSMTP(s.client, cl)
	}

	if err := s.listenRevocations(runCtx); err != nil {
		return err
	}

	api := admin.New(s.Store, tokenHash, s.log.With("part", "admin"), admin.Options{
		Diagnoser: s.Access, Sessions: s, Keys: s.OAuth, OAuth: s.OAuth.Handler(), Settings: s,
		Usage: meter, Reports: reports, Delivery: worker,
	})
	// The web admin center serves its pages on the admin listener and
	// hands /api/, /oauth2/, /.well-known/ and /healthz to the API.
	ui, err := webui.New(webui.Config{API: api, Store: s.Store, Counters: s.Store, Log: s.log.With("part", "webui"),
		SecureCookies: strings.HasPrefix(cfg.Admin.PublicURL, "https://")})
	if err != nil {
		return fmt.Errorf("web admin center: %w", err)
	}
	s.http = &http.Server{
		Handler:           ui,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(al); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	client := "off"
	if s.ClientAddr != nil {
		client = s.ClientAddr.String()
	}
	s.log.Info("hve started", "smtp", s.SMTPAddr.String(), "client_smtp", client, "admin", "http://"+s.AdminAddr.String(),
		"oauth_issuer", issuer, "data", cfg.Data, "store", redactStore(cmp.Or(cfg.Store, "sqlite")))
	return nil
}

// dirCacheMaxAge bounds the age of cached directory reads: the embedded
// store counts every change itself, so values are kept until the next
// change; a shared store hears of other nodes' changes through
// notifications, and a value is kept at most a few seconds in case one is
// missed.
func dirCacheMaxAge(cfg config.Config) time.Duration {
	if embeddedStore(cfg) {
		return 0
	}
	return DirCacheMaxAge
}

// DirCacheMaxAge is how long a node on a shared store keeps a directory
// read at most (see docs/several-nodes.md).
const DirCacheMaxAge = 5 * time.Second

// serveSMTP serves an endpoint on its listener until Close.
func (s *Server) serveSMTP(e *smtpd.Endpoint, l net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := e.Serve(l); err != nil && !isClosed(err) {
			s.log.Error("SMTP listener stopped", "endpoint", string(e.Kind()), "err", err)
		}
	}()
}

// CloseSessions ends the open SMTP sessions signed in as an identity (an
// HVE account or a mailbox of the tenant) on both endpoints: each client
// reads reply.SessionRevoked and the connection is closed. It returns how
// many sessions were ended on this node. With a store that several nodes
// share, it also tells the other nodes, which end theirs (not counted)
// moments later. Admin changes that revoke an identity's sessions
// (tokens-valid-from, disabling, removal) call it.
func (s *Server) CloseSessions(tenantID int64, kind directory.Kind, id int64) int {
	n := s.closeLocalSessions(tenantID, kind, id)
	if rs, ok := s.Store.(store.Revocations); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r := store.Revocation{TenantID: tenantID, Kind: kind, ID: id, Node: s.node}
		if err := rs.PublishRevocation(ctx, r); err != nil {
			s.log.Error("revoked sessions may stay open on other nodes", "tenant", tenantID, "kind", string(kind), "id", id, "err", err)
		}
	}
	return n
}

// closeLocalSessions is CloseSessions on this node only.
func (s *Server) closeLocalSessions(tenantID int64, kind directory.Kind, id int64) int {
	n := 0
	for _, e := range []*smtpd.Endpoint{s.endpoint, s.client} {
		if e != nil {
			n += e.CloseSessions(tenantID, kind, id)
		}
	}
	return n
}

// listenRevocations makes this node end the sessions other nodes revoke,
// when the store is shared. It returns once the node listens, so that a
// node that has started hears every revocation published after.
func (s *Server) listenRevocations(ctx context.Context) error {
	rs, ok := s.Store.(store.Revocations)
	if !ok {
		return nil
	}
	log := s.log.With("part", "revocations")
	listening := make(chan struct{})
	var first sync.Once
	s.wg.Go(func() {
		rs.ListenRevocations(ctx, store.RevocationListener{
			Revoked: func(r store.Revocation) {
				if r.Node == s.node {
					return // ended when it was published
				}
				if n := s.closeLocalSessions(r.TenantID, r.Kind, r.ID); n > 0 {
					log.Info("ended sessions revoked on another node", "tenant", r.TenantID, "kind", string(r.Kind), "id", r.ID,
						"sessions", n, "by", r.Node)
				}
			},
			Listening: func() {
				first.Do(func() { close(listening) })
				log.Debug("listening for session revocations of other nodes")
			},
			Lost: func(err error) {
				log.Error("not listening for session revocations of other nodes; trying again", "err", err)
			},
		})
	})
	select {
	case <-listening:
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("store: could not listen for the session revocations of other nodes within 30s")
	}
}

// SettingsChanged makes both endpoints read a tenant's limit settings and
// its accounts' thresholds again for their next transactions. The admin
// API calls it after every change of them; other nodes see a change within
// smtpd.DefaultSettingsTTL.
func (s *Server) SettingsChanged(tenantID int64) {
	for _, e := range []*smtpd.Endpoint{s.endpoint, s.client} {
		if e != nil {
			e.SettingsChanged(tenantID)
		}
	}
}

// sharedTail is the store with its reading of new trace events shared by
// the usage meter and the webhook dispatcher.
type sharedTail struct {
	store.Store
	tail *tracetail.Reader
}

// MeterEvents reads through the shared tail.
func (t sharedTail) MeterEvents(ctx context.Context, afterID int64, limit int) ([]store.MeterEvent, error) {
	return t.tail.MeterEvents(ctx, afterID, limit)
}

// startNotifications starts what tells the outside world, from trace: the
// dispatcher (webhook outbox rows, failure reports), the webhook sender,
// and the anomaly rule; and makes the alert raiser.
func (s *Server) startNotifications(ctx context.Context, worker *delivery.Worker, meter *usage.Aggregator, tail sharedTail) {
	cfg := s.Config
	dispatcher := webhook.NewDispatcher(tail, s.log.With("part", "webhooks"))
	dispatcher.Hostname = cfg.Hostname
	dispatcher.OnReport = worker.Wake
	sender := webhook.NewSender(s.Store, nodeID(cfg.Hostname), s.log.With("part", "webhooks"))
	dispatcher.OnNotify = sender.Wake
	s.Alerts = alert.NewRaiser(s.Store, s.log.With("part", "alerts"))
	s.Alerts.OnRaise = dispatcher.Wake
	anomaly := alert.NewAnomaly(s.Store, s.Alerts, s.log.With("part", "alerts"))
	anomaly.Factor, anomaly.Floor, anomaly.Meter = cfg.Alerts.AnomalyFactor, cfg.Alerts.AnomalyFloor, meter
	for _, run := range []func(context.Context){dispatcher.Run, sender.Run, anomaly.Run} {
		s.wg.Go(func() { run(ctx) })
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "server closed")
}

// Close stops the node: listeners first, then the spool (messages in
// flight are committed or refused), then delivery, then the store.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// Let sessions finish what they are doing; then cut the rest.
		var endpoints sync.WaitGroup
		for _, e := range []*smtpd.Endpoint{s.endpoint, s.client} {
			if e == nil {
				continue
			}
			endpoints.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if e.Shutdown(ctx) != nil {
					e.Close()
				}
			})
		}
		endpoints.Wait()
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.http.Shutdown(ctx)
			cancel()
		}
		if s.spool != nil {
			s.spool.Close()
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
		if s.Alerts != nil {
			s.Alerts.Wait() // alerts being recorded
		}
		if s.limits != nil {
			// Units leased and not used go back, for the other nodes.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.limits.Close(ctx); err != nil {
				s.log.Error("limits: returning unused quota at shutdown", "err", err)
			}
			cancel()
		}
		if s.recorder != nil {
			s.recorder.Close()
		}
		err = s.Store.Close()
	})
	return err
}

// ensureDefaultTenant creates the default tenant on first start.
func ensureDefaultTenant(ctx context.Context, st store.Store) error {
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return err
	}
	if len(tenants) == 0 {
		// Another node starting at the same time may have created it.
		if _, err := st.CreateTenant(ctx, directory.DefaultTenant); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("creating the default tenant: %w", err)
		}
	}
	return nil
}

// adminToken returns the hash of the admin API token. The token lives in
// <data>/admin.token (mode 0600): it is made on first start, and made anew
// if the file is removed, which is how an admin rotates it.
func (s *Server) adminToken() ([sha256.Size]byte, error) {
	b, err := os.ReadFile(s.TokenFile)
	token := strings.TrimSpace(string(b))
	if errors.Is(err, os.ErrNotExist) || err == nil && token == "" {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return [sha256.Size]byte{}, err
		}
		token = "hve_" + hex.EncodeToString(raw)
		if err := os.WriteFile(s.TokenFile, []byte(token+"\n"), 0o600); err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("writing admin token: %w", err)
		}
		s.log.Info("created admin API token", "file", s.TokenFile)
	} else if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("reading admin token: %w", err)
	}
	return sha256.Sum256([]byte(token)), nil
}

// nodeID names this process as the owner of delivery leases.
func nodeID(hostname string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%x", hostname, os.Getpid(), b)
}
