// Package config reads hve's configuration file (TOML). Every setting has a
// default, so the file is optional; command-line flags override it.
package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"hve/internal/directory"
	"hve/internal/queue"
)

// Config is the whole configuration of one hve node.
type Config struct {
	// Data is the data directory: the embedded store, the TLS certificate
	// and the admin token.
	Data string `toml:"data"`
	// Hostname names this server in SMTP greetings, Received headers and
	// generated Message-IDs.
	Hostname string `toml:"hostname"`
	// Store selects the store: empty (or "sqlite") is the embedded SQLite
	// store in Data, for one node; a postgres:// URL is a PostgreSQL
	// database that several nodes share (docs/several-nodes.md).
	Store string `toml:"store"`
	SMTP  SMTP   `toml:"smtp"`
	// Client is the standard client endpoint, for mailboxes.
	Client Client `toml:"client"`
	Admin  Admin  `toml:"admin"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// Delivery tunes delivery to next hops.
	Delivery Delivery `toml:"delivery"`
	// Queue guards the disk the queue lives on.
	Queue Queue `toml:"queue"`
	// Alerts tunes the anomaly alert rule (docs/limits.md, "Alerts").
	Alerts Alerts `toml:"alerts"`
	// Trace sets how long message trace is kept.
	Trace Trace `toml:"trace"`
	// Routes ([[route]] tables) are written to the store at every start,
	// replacing a route of the same tenant and domain that the admin API
	// set in between.
	Routes []Route `toml:"route"`
}

// Delivery tunes delivery.
type Delivery struct {
	// MaxAge is how long a message is retried after temporary failures
	// ("48h"); then its open recipients fail with the last reply.
	MaxAge time.Duration `toml:"max_age"`
	// Lease is how long a node reserves the messages it claimed ("5m").
	// When a node dies, another node delivers its claimed messages once the
	// lease has passed; relaying gives up on a batch at 3/4 of it.
	Lease time.Duration `toml:"lease"`
}

// Queue guards the disk the queue lives on.
type Queue struct {
	// MinFreeDisk is the least free space of the data directory's
	// filesystem ("1GiB", "500MB", "5%", or "0" for no check): below it,
	// submission answers 452 4.3.1 until there is room again.
	MinFreeDisk string `toml:"min_free_disk"`
	// KeepFinished is how long a message that has left the queue (every
	// recipient delivered or failed) keeps its row, recipient states and
	// body: a number of days ("1d") or a Go duration ("36h"); "0" keeps
	// them for ever. Its trace events are kept apart, by [trace] retention.
	KeepFinished string `toml:"keep_finished"`
}

// DefaultKeepFinished is how long finished messages are kept by default:
// long enough for the failure reports and webhooks that read a finished
// message's recipients to catch up after a node was down for hours.
const DefaultKeepFinished = "1d"

// MinKeepFinished is the shortest KeepFinished: the failure report of a
// message reads its recipient states after the message is done, and a
// node's dispatcher may be minutes behind after a restart.
const MinKeepFinished = time.Hour

// KeepFinishedPeriod parses KeepFinished (empty is DefaultKeepFinished);
// 0 means finished messages are never deleted. A period shorter than
// MinKeepFinished is an error.
func (q Queue) KeepFinishedPeriod() (time.Duration, error) {
	d, err := period("keep_finished", q.KeepFinished, DefaultKeepFinished, "1d", "36h")
	if err == nil && d != 0 && d < MinKeepFinished {
		return 0, fmt.Errorf("keep_finished %q is too short: at least an hour (\"1h\"), or \"0\" to keep for ever; failure reports read a finished message's recipients after it is done", q.KeepFinished)
	}
	return d, err
}

// MinFree parses MinFreeDisk.
func (q Queue) MinFree() (queue.SpaceThreshold, error) {
	return queue.ParseSpaceThreshold(q.MinFreeDisk)
}

// Alerts tunes the anomaly rule: an account alerts when its recipients in
// an hour exceed AnomalyFactor × max(its mean hourly volume over the 7 days
// before, AnomalyFloor).
type Alerts struct {
	// AnomalyFactor is how many times its baseline an hour must exceed; 0
	// turns the rule off.
	AnomalyFactor float64 `toml:"anomaly_factor"`
	// AnomalyFloor is the least baseline assumed, in recipients per hour,
	// so that quiet accounts do not alert on small bursts.
	AnomalyFloor int64 `toml:"anomaly_floor"`
}

// Trace sets how long message trace is kept (docs/trace.md, "Retention").
type Trace struct {
	// Retention is how long trace events are kept: a number of days
	// ("90d") or a Go duration ("2160h"); "0" keeps them for ever.
	Retention string `toml:"retention"`
}

// DefaultTraceRetention is the spec's trace retention.
const DefaultTraceRetention = "90d"

// RetentionPeriod parses Retention (empty is DefaultTraceRetention); 0
// means events are never deleted.
func (t Trace) RetentionPeriod() (time.Duration, error) {
	return period("retention", t.Retention, DefaultTraceRetention, "90d", "720h")
}

// period parses a setting that is a number of days ("90d"), a Go duration
// ("720h"), or "0" for for ever. An empty value is def: a Config built in
// code rather than from Default keeps the default too, since an unset field
// must not mean "never delete". The examples go into the error message.
func period(key, value, def, daysExample, durationExample string) (time.Duration, error) {
	s := strings.TrimSpace(value)
	if s == "" {
		s = def
	}
	if s == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("%s %q: want a number of days such as %q, a duration such as %q, or \"0\" to keep for ever",
		key, value, daysExample, durationExample)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, bad
	}
	return d, nil
}

// Route is a [[route]] table: how mail for one accepted domain (or, with
// domain "*", every domain of the tenant without its own route) is
// delivered. See directory.Route.
type Route struct {
	// Tenant names the tenant; empty means the default tenant.
	Tenant string `toml:"tenant"`
	Domain string `toml:"domain"`
	// Type is local, smtp or lmtp.
	Type string `toml:"type"`
	// Target is host:port, or unix:/path for lmtp.
	Target string `toml:"target"`
	// TLS is required, opportunistic (smtp's default) or none.
	TLS      string `toml:"tls"`
	AuthUser string `toml:"auth_user"`
	// AuthPassword, or AuthPasswordFile (a file holding it), signs in to
	// the next hop; the file keeps the secret out of the configuration.
	AuthPassword     string `toml:"auth_password"`
	AuthPasswordFile string `toml:"auth_password_file"`
	ClientCert       string `toml:"client_cert"`
	ClientKey        string `toml:"client_key"`
	CAFile           string `toml:"ca_file"`
	MaxConnections   int    `toml:"max_connections"`
}

// DirectoryRoute turns the table into a route (without its tenant), reading
// the password file if one is named, and checks it.
func (r Route) DirectoryRoute() (directory.Route, error) {
	pw := r.AuthPassword
	if r.AuthPasswordFile != "" {
		if pw != "" {
			return directory.Route{}, fmt.Errorf("route %s: set auth_password or auth_password_file, not both", r.Domain)
		}
		b, err := os.ReadFile(r.AuthPasswordFile)
		if err != nil {
			return directory.Route{}, fmt.Errorf("route %s: reading auth_password_file: %w", r.Domain, err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	d := directory.Route{Domain: r.Domain, Type: directory.RouteType(r.Type), Target: r.Target, TLS: directory.TLSMode(r.TLS),
		AuthUser: r.AuthUser, AuthPassword: pw, ClientCert: r.ClientCert, ClientKey: r.ClientKey, CAFile: r.CAFile,
		MaxConnections: r.MaxConnections}
	if err := d.Normalize(); err != nil {
		return d, err
	}
	return d, nil
}

// SMTP configures the HVE submission endpoint.
type SMTP struct {
	Addr string `toml:"addr"`
	// TLSCert and TLSKey are PEM files; when both are empty a self-signed
	// certificate is generated once and kept in the data directory. The
	// standard client endpoint uses the same certificate.
	TLSCert         string `toml:"tls_cert"`
	TLSKey          string `toml:"tls_key"`
	MaxRecipients   int    `toml:"max_recipients"`
	MaxMessageBytes int64  `toml:"max_message_bytes"`
}

// Client configures the standard client endpoint: mailboxes submit there
// with the ordinary mailbox limits (spec section 3).
type Client struct {
	// Addr is the listen address; empty disables the endpoint.
	Addr            string `toml:"addr"`
	MaxRecipients   int    `toml:"max_recipients"`
	MaxMessageBytes int64  `toml:"max_message_bytes"`
	// MessagesPerMinute per mailbox: beyond it, messages are accepted and
	// their delivery is paced to this rate.
	MessagesPerMinute int `toml:"messages_per_minute"`
	// RecipientsPerDay per mailbox, in any 24 hours.
	RecipientsPerDay int `toml:"recipients_per_day"`
	// MaxConnections per mailbox: signed-in connections at once.
	MaxConnections int `toml:"max_connections"`
}

// Admin configures the admin API.
type Admin struct {
	Addr string `toml:"addr"`
	// PublicURL is the base URL clients reach the admin listener at (the
	// OAuth token endpoint is served there): the issuer of hve's OAuth
	// tokens. Empty means http:// and the listener's address.
	PublicURL string `toml:"public_url"`
}

// Default returns the configuration used when no file says otherwise.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return Config{
		Data:     "./hve-data",
		Hostname: host,
		SMTP:     SMTP{Addr: ":587", MaxRecipients: 50, MaxMessageBytes: 10 * 1024 * 1024},
		Client: Client{Addr: ":588", MaxRecipients: 500, MaxMessageBytes: 10 * 1024 * 1024,
			MessagesPerMinute: 30, RecipientsPerDay: 10000, MaxConnections: 3},
		Admin:    Admin{Addr: "127.0.0.1:8025"},
		LogLevel: "info",
		Delivery: Delivery{MaxAge: 48 * time.Hour, Lease: 5 * time.Minute},
		Alerts:   Alerts{AnomalyFactor: 10, AnomalyFloor: 100},
		Queue:    Queue{MinFreeDisk: queue.DefaultMinFreeDisk, KeepFinished: DefaultKeepFinished},
		Trace:    Trace{Retention: DefaultTraceRetention},
	}
}

// Load reads path over the defaults. Unknown keys are an error, so a typo
// does not silently leave a default in force.
func Load(path string) (Config, error) {
	c := Default()
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("reading config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		return c, fmt.Errorf("config %s: unknown setting %q", path, undecoded[0].String())
	}
	if c.Delivery.MaxAge <= 0 {
		return c, fmt.Errorf("config %s: [delivery] max_age must be a positive duration such as \"48h\"", path)
	}
	if c.Delivery.Lease < time.Second {
		return c, fmt.Errorf("config %s: [delivery] lease must be a duration of at least 1s such as \"5m\"", path)
	}
	if _, err := c.Queue.MinFree(); err != nil {
		return c, fmt.Errorf("config %s: [queue] %w", path, err)
	}
	if _, err := c.Queue.KeepFinishedPeriod(); err != nil {
		return c, fmt.Errorf("config %s: [queue] %w", path, err)
	}
	if _, err := c.Trace.RetentionPeriod(); err != nil {
		return c, fmt.Errorf("config %s: [trace] %w", path, err)
	}
	if c.Alerts.AnomalyFactor != 0 && c.Alerts.AnomalyFactor < 1 || c.Alerts.AnomalyFloor < 0 {
		return c, fmt.Errorf("config %s: [alerts] anomaly_factor must be 0 (off) or at least 1, and anomaly_floor not negative", path)
	}
	for _, r := range c.Routes {
		if _, err := r.DirectoryRoute(); err != nil {
			return c, fmt.Errorf("config %s: [[route]]: %w", path, err)
		}
	}
	return c, nil
}
