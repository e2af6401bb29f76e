// Package config reads hve's configuration file (TOML). Every setting has a
// default, so the file is optional; command-line flags override it.
package config

import (
	"fmt"
	"os"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration of one hve node.
type Config struct {
	// Data is the data directory: the embedded store, the TLS certificate
	// and the admin token.
	Data string `toml:"data"`
	// Hostname names this server in SMTP greetings, Received headers and
	// generated Message-IDs.
	Hostname string `toml:"hostname"`
	// Store selects the store; empty means the embedded SQLite store in Data.
	Store string `toml:"store"`
	SMTP  SMTP   `toml:"smtp"`
	// Client is the standard client endpoint, for mailboxes.
	Client Client `toml:"client"`
	Admin  Admin  `toml:"admin"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
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
	return c, nil
}
