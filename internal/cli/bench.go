package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"hve/internal/bench"
)

func benchFlags(fs *flag.FlagSet) {
	fs.String("addr", "", "SMTP endpoint `host:port` to load; loopback only (required)")
	fs.Int("conns", 20, "concurrent `connections`")
	fs.Int("msgs", 10000, "total `messages`")
	fs.Int("rcpts", 1, "envelope `recipients` per message, taken in turn from --rcpt-list")
	fs.String("rcpt-list", "", "comma-separated recipient `addresses` to cycle through (required)")
	fs.String("from", "", "sender `address` (default: the --auth user)")
	fs.Int("size", 1024, "message body size in `bytes`")
	fs.String("auth", "", "sign in with AUTH PLAIN as `user:password`")
	fs.String("xoauth2", "", "sign in with AUTH XOAUTH2 as `user:token` (a token from POST /oauth2/token)")
	fs.Bool("starttls", true, "use STARTTLS (hve refuses AUTH and MAIL without it)")
	fs.Bool("insecure-skip-verify", true, "accept any TLS certificate (hve's default one is self-signed)")
	fs.Bool("reconnect-per-message", false, "open a new connection (TLS, AUTH) for every message")
	fs.Duration("duration", 0, "stop after this `long` even if --msgs were not all sent (0: no limit but the 10m safety cap)")
	fs.Duration("idle-for", 0, "first open all --conns connections (signed in), keep them all idle this `long`, then let them all send (W5; 0: off)")
	fs.Float64("rate", 0, "send at most this many `messages per second` in all (0: as fast as the server accepts)")
}

func benchSinkFlags(fs *flag.FlagSet) {
	fs.String("addr", "127.0.0.1:2626", "loopback `host:port` to listen on")
	fs.String("durable", "", "append every message to `DIR`/sink.spool and fsync before the 250, sharing fsyncs between concurrent messages (group commit); empty: keep nothing")
	fs.String("cert", "", "TLS certificate `file` (PEM; default: a self-signed RSA-2048 one made at start)")
	fs.String("key", "", "TLS key `file` (PEM)")
}

// runBenchSink runs the measuring peer of the benchmark suite until
// SIGINT or SIGTERM, then prints what it accepted as one JSON line.
func runBenchSink(c *ctx) error {
	if len(c.args) != 0 {
		return usageError{"hve bench-sink takes no arguments; see hve bench-sink -h"}
	}
	if (c.str("cert") == "") != (c.str("key") == "") {
		return usageError{"--cert and --key go together"}
	}
	if dir := c.str("durable"); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	s, err := bench.StartSink(bench.SinkConfig{Addr: c.str("addr"), CertFile: c.str("cert"), KeyFile: c.str("key"), Durable: c.str("durable")})
	if err != nil {
		return err
	}
	kind := "no-op"
	if c.str("durable") != "" {
		kind = "durable (group commit)"
	}
	fmt.Fprintf(c.env.Stderr, "hve bench-sink: %s sink listening on %s\n", kind, s.Addr())
	select {
	case <-sig:
	case <-c.Done():
	}
	err = s.Close()
	line, _ := json.Marshal(s.Stats())
	c.env.Stdout.Write(append(line, '\n'))
	return err
}

// runBench runs the load generator and prints its result as one JSON line.
func runBench(c *ctx) error {
	if len(c.args) != 0 {
		return usageError{"hve bench takes no arguments; see hve bench -h"}
	}
	cfg := bench.Config{
		Addr:                c.str("addr"),
		From:                c.str("from"),
		Conns:               flagValue[int](c, "conns"),
		Msgs:                flagValue[int](c, "msgs"),
		Rcpts:               flagValue[int](c, "rcpts"),
		Size:                flagValue[int](c, "size"),
		Duration:            flagValue[time.Duration](c, "duration"),
		StartTLS:            flagValue[bool](c, "starttls"),
		InsecureSkipVerify:  flagValue[bool](c, "insecure-skip-verify"),
		ReconnectPerMessage: flagValue[bool](c, "reconnect-per-message"),
		IdleFor:             flagValue[time.Duration](c, "idle-for"),
		Rate:                flagValue[float64](c, "rate"),
		Log:                 c.env.Stderr,
	}
	if cfg.Addr == "" {
		return usageError{"--addr is required"}
	}
	for _, a := range strings.Split(c.str("rcpt-list"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.RcptList = append(cfg.RcptList, a)
		}
	}
	if len(cfg.RcptList) == 0 {
		return usageError{"--rcpt-list is required"}
	}
	if auth := c.str("auth"); auth != "" {
		user, pass, ok := strings.Cut(auth, ":")
		if !ok || user == "" {
			return usageError{"--auth must be user:password"}
		}
		cfg.User, cfg.Pass = user, pass
	}
	if xo := c.str("xoauth2"); xo != "" {
		user, token, ok := strings.Cut(xo, ":")
		if !ok || user == "" || token == "" || cfg.User != "" {
			return usageError{"--xoauth2 must be user:token, and not given with --auth"}
		}
		cfg.User, cfg.Token = user, token
	}
	res, err := bench.Run(c, cfg)
	if err != nil {
		return err
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if _, err := c.env.Stdout.Write(append(line, '\n')); err != nil {
		return err
	}
	if res.Accepted == 0 {
		return errors.New("no message was accepted")
	}
	return nil
}
