package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"hve/internal/config"
	"hve/internal/demo"
	"hve/internal/server"
)

func serveFlags(fs *flag.FlagSet) {
	fs.String("config", "", "configuration `file` (TOML); flags override it")
	fs.String("smtp-addr", "", "SMTP endpoint listen `address` (default :587; with --demo 127.0.0.1:2587)")
	fs.String("client-addr", "", "standard client endpoint (mailboxes) listen `address` (default :588; with --demo 127.0.0.1:2588; off disables it)")
	fs.String("admin-addr", "", "admin API listen `address` (default 127.0.0.1:8025)")
	fs.String("store", "", "the store: a postgres:// `URL` for several nodes on one PostgreSQL database, or sqlite (the default) for the embedded store in the data directory")
	fs.Bool("demo", false, "on an empty data directory, create a demo organisation and print how to send to it")
	fs.String("pprof", "", "serve Go's profiler (net/http/pprof) on this loopback `address` (default: off)")
}

func runServe(c *ctx) error {
	cfg := config.Default()
	if file := c.str("config"); file != "" {
		var err error
		if cfg, err = config.Load(file); err != nil {
			return err
		}
	}
	if flagSet(c.fs, "data") || c.str("config") == "" {
		cfg.Data = c.g.data
	}
	isDemo := c.boolFlag("demo")
	if isDemo {
		cfg.SMTP.Addr = "127.0.0.1:2587"
		cfg.Client.Addr = "127.0.0.1:2588"
	}
	if v := c.str("smtp-addr"); v != "" {
		cfg.SMTP.Addr = v
	}
	// An empty --client-addr, like off, disables the endpoint, as an empty
	// addr in the [client] section does.
	if v := c.str("client-addr"); v != "" || flagSet(c.fs, "client-addr") {
		if v == "off" {
			v = ""
		}
		cfg.Client.Addr = v
	}
	if v := c.str("admin-addr"); v != "" {
		cfg.Admin.Addr = v
	}
	if v := c.str("store"); v != "" {
		cfg.Store = v
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log_level %q: %w", cfg.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(c.env.Stderr, &slog.HandlerOptions{Level: level}))

	// Listen for signals before starting, so that none in between is lost.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	if addr := c.str("pprof"); addr != "" {
		stop, err := startPprof(addr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	srv, err := server.Start(c, cfg, log)
	if err != nil {
		return err
	}
	if isDemo {
		pw, err := demo.Seed(c, srv.Store)
		if err != nil {
			srv.Close()
			return fmt.Errorf("creating demo data: %w", err)
		}
		client := "go run ./cmd/hve"
		if cfg.Admin.Addr != config.Default().Admin.Addr {
			client += " --server http://" + srv.AdminAddr.String()
		}
		if cfg.Data != config.Default().Data {
			client += " --data " + cfg.Data
		}
		demo.PrintHowTo(c.env.Stdout, srv.SMTPAddr.String(), pw, client)
	}
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	return srv.Close()
}
