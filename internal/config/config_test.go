package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hve.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := writeFile(t, `
data = "/var/lib/hve"
hostname = "mail.example.com"
log_level = "debug"

[smtp]
addr = ":2587"
tls_cert = "/etc/hve/cert.pem"
tls_key = "/etc/hve/key.pem"
max_recipients = 10
max_message_bytes = 1048576

[client]
addr = ":2588"
max_recipients = 100
max_message_bytes = 2097152
messages_per_minute = 10
recipients_per_day = 1000
max_connections = 2

[admin]
addr = "127.0.0.1:9000"
public_url = "https://hve.example.com:8443"

[delivery]
max_age = "72h"
lease = "30s"

[queue]
min_free_disk = "5%"
keep_finished = "7d"

[alerts]
anomaly_factor = 20
anomaly_floor = 500

[trace]
retention = "30d"

[[route]]
domain = "contoso.com"
type = "smtp"
target = "exchange.contoso.com:25"
tls = "required"
auth_user = "hve"
auth_password = "secret"
max_connections = 5

[[route]]
tenant = "fabrikam"
domain = "*"
type = "lmtp"
target = "unix:/run/dovecot/lmtp"
`)
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Data:     "/var/lib/hve",
		Hostname: "mail.example.com",
		LogLevel: "debug",
		SMTP:     SMTP{Addr: ":2587", TLSCert: "/etc/hve/cert.pem", TLSKey: "/etc/hve/key.pem", MaxRecipients: 10, MaxMessageBytes: 1 << 20},
		Client: Client{Addr: ":2588", MaxRecipients: 100, MaxMessageBytes: 2 << 20,
			MessagesPerMinute: 10, RecipientsPerDay: 1000, MaxConnections: 2},
		Admin:    Admin{Addr: "127.0.0.1:9000", PublicURL: "https://hve.example.com:8443"},
		Delivery: Delivery{MaxAge: 72 * time.Hour, Lease: 30 * time.Second},
		Queue:    Queue{MinFreeDisk: "5%", KeepFinished: "7d"},
		Alerts:   Alerts{AnomalyFactor: 20, AnomalyFloor: 500},
		Trace:    Trace{Retention: "30d"},
		Routes: []Route{
			{Domain: "contoso.com", Type: "smtp", Target: "exchange.contoso.com:25", TLS: "required", AuthUser: "hve", AuthPassword: "secret", MaxConnections: 5},
			{Tenant: "fabrikam", Domain: "*", Type: "lmtp", Target: "unix:/run/dovecot/lmtp"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v\nwant %+v", got, want)
	}
}

func TestLoadKeepsDefaultsForMissingSettings(t *testing.T) {
	got, err := Load(writeFile(t, "hostname = \"mx.example.com\"\n[smtp]\nmax_recipients = 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Hostname = "mx.example.com"
	want.SMTP.MaxRecipients = 5
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v\nwant the defaults with two changes: %+v", got, want)
	}
	if got.SMTP.Addr != ":587" || got.SMTP.MaxMessageBytes != 10<<20 || got.Admin.Addr != "127.0.0.1:8025" ||
		got.Client != (Client{Addr: ":588", MaxRecipients: 500, MaxMessageBytes: 10 << 20, MessagesPerMinute: 30,
			RecipientsPerDay: 10000, MaxConnections: 3}) || got.Admin.PublicURL != "" {
		t.Errorf("defaults changed: %+v", got)
	}
}

// TestClientEndpointCanBeDisabled: an empty address turns the standard
// client endpoint off, and the other client settings keep their defaults.
func TestClientEndpointCanBeDisabled(t *testing.T) {
	got, err := Load(writeFile(t, "[client]\naddr = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Client.Addr = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v\nwant %+v", got, want)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	got, err := Load(writeFile(t, ""))
	if err != nil || !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(empty file) = %+v, %v; want the defaults", got, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, content, wantInErr string
	}{
		{"unknown top-level key", "hostnme = \"x\"\n", "hostnme"},
		{"unknown nested key", "[smtp]\nmax_recipient = 5\n", "smtp.max_recipient"},
		{"unknown table", "[imap]\naddr = \":143\"\n", "imap"},
		{"wrong type", "[smtp]\nmax_recipients = \"many\"\n", "max_recipients"},
		{"not TOML", "data = \n", "hve.toml"},
		{"max age not a duration", "[delivery]\nmax_age = \"two days\"\n", "max_age"},
		{"max age zero", "[delivery]\nmax_age = \"0s\"\n", "max_age"},
		{"lease too short", "[delivery]\nlease = \"500ms\"\n", "lease"},
		{"min free disk not a size", "[queue]\nmin_free_disk = \"plenty\"\n", "min_free_disk"},
		{"min free disk 100%", "[queue]\nmin_free_disk = \"100%\"\n", "min_free_disk"},
		{"anomaly factor below 1", "[alerts]\nanomaly_factor = 0.5\n", "anomaly_factor"},
		{"negative anomaly floor", "[alerts]\nanomaly_floor = -1\n", "anomaly_floor"},
		{"route without target", "[[route]]\ndomain = \"a.example\"\ntype = \"smtp\"\n", "needs a target"},
		{"route of unknown type", "[[route]]\ndomain = \"a.example\"\ntype = \"uucp\"\n", "uucp"},
		{"route with both passwords", "[[route]]\ndomain = \"a.example\"\ntype = \"smtp\"\ntarget = \"mx:25\"\nauth_user = \"u\"\nauth_password = \"p\"\nauth_password_file = \"/f\"\n", "not both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("Load = %v, want an error naming %q", err, tc.wantInErr)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestAlertsSection(t *testing.T) {
	c, err := Load(writeFile(t, "[alerts]\nanomaly_factor = 5\n"))
	if err != nil || c.Alerts.AnomalyFactor != 5 || c.Alerts.AnomalyFloor != 100 {
		t.Errorf("Load = %+v, %v; want factor 5 and the default floor", c.Alerts, err)
	}
	if c, err := Load(writeFile(t, "[alerts]\nanomaly_factor = 0\n")); err != nil || c.Alerts.AnomalyFactor != 0 {
		t.Errorf("factor 0 (the rule off): %+v, %v", c.Alerts, err)
	}
	if d := Default().Alerts; d.AnomalyFactor != 10 || d.AnomalyFloor != 100 {
		t.Errorf("default alerts = %+v", d)
	}
}

func TestTraceRetention(t *testing.T) {
	if d, err := Default().Trace.RetentionPeriod(); err != nil || d != 90*24*time.Hour {
		t.Errorf("default trace retention = %v, %v; want 90 days", d, err)
	}
	// A Config built in code, without Default, keeps the default too.
	if d, err := (Trace{}).RetentionPeriod(); err != nil || d != 90*24*time.Hour {
		t.Errorf("empty trace retention = %v, %v; want the default, 90 days", d, err)
	}
	tests := map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, "0": 0, "0d": 0, "0s": 0}
	for in, want := range tests {
		c, err := Load(writeFile(t, "[trace]\nretention = \""+in+"\"\n"))
		if err != nil {
			t.Errorf("retention %q: %v", in, err)
			continue
		}
		if d, err := c.Trace.RetentionPeriod(); err != nil || d != want {
			t.Errorf("retention %q = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"ninety days", "-1d", "-2h", "d", "1w"} {
		if _, err := Load(writeFile(t, "[trace]\nretention = \""+in+"\"\n")); err == nil || !strings.Contains(err.Error(), "[trace] retention") {
			t.Errorf("retention %q: error %v, want one naming [trace] retention", in, err)
		}
	}
}

func TestKeepFinished(t *testing.T) {
	if d, err := Default().Queue.KeepFinishedPeriod(); err != nil || d != 24*time.Hour {
		t.Errorf("default keep_finished = %v, %v; want a day", d, err)
	}
	if d, err := (Queue{}).KeepFinishedPeriod(); err != nil || d != 24*time.Hour {
		t.Errorf("empty keep_finished = %v, %v; want the default, a day", d, err)
	}
	tests := map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "0": 0}
	for in, want := range tests {
		c, err := Load(writeFile(t, "[queue]\nkeep_finished = \""+in+"\"\n"))
		if err != nil {
			t.Errorf("keep_finished %q: %v", in, err)
			continue
		}
		if d, err := c.Queue.KeepFinishedPeriod(); err != nil || d != want {
			t.Errorf("keep_finished %q = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"59m", "30s"} {
		_, err := Load(writeFile(t, "[queue]\nkeep_finished = \""+in+"\"\n"))
		if err == nil || !strings.Contains(err.Error(), "[queue] keep_finished") || !strings.Contains(err.Error(), "at least an hour") {
			t.Errorf("keep_finished %q: error %v, want one saying it is shorter than an hour", in, err)
		}
	}
	if d, err := (Queue{KeepFinished: "1h"}).KeepFinishedPeriod(); err != nil || d != time.Hour {
		t.Errorf("keep_finished 1h = %v, %v; want an hour, the shortest allowed", d, err)
	}
	for _, in := range []string{"a day", "-1d", "1w"} {
		_, err := Load(writeFile(t, "[queue]\nkeep_finished = \""+in+"\"\n"))
		if err == nil || !strings.Contains(err.Error(), "[queue] keep_finished") || !strings.Contains(err.Error(), `"36h"`) {
			t.Errorf("keep_finished %q: error %v, want one naming [queue] keep_finished with an example", in, err)
		}
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if d.Hostname == "" || d.Data == "" || d.SMTP.Addr == "" || d.Admin.Addr == "" || d.LogLevel != "info" ||
		d.SMTP.MaxRecipients <= 0 || d.SMTP.MaxMessageBytes <= 0 || d.Store != "" || d.Queue.MinFreeDisk != "1GiB" {
		t.Errorf("Default() = %+v", d)
	}
}

func TestRoutePasswordFile(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "relay.pw")
	if err := os.WriteFile(pwFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Route{Domain: "a.example", Type: "smtp", Target: "mx.a.example:25", TLS: "required", AuthUser: "hve", AuthPasswordFile: pwFile}
	d, err := r.DirectoryRoute()
	if err != nil || d.AuthPassword != "from-a-file" || d.MaxConnections == 0 {
		t.Errorf("DirectoryRoute = %+v, %v; want the password from the file and defaults filled in", d, err)
	}
	r.AuthPasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := r.DirectoryRoute(); err == nil || !strings.Contains(err.Error(), "auth_password_file") {
		t.Errorf("DirectoryRoute with a missing password file = %v", err)
	}
}
