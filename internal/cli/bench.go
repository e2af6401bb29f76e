package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"strings"
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
