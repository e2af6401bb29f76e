package tlsutil_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hve/internal/tlsutil"
)

const hostname = "hve.example.test"

// config calls Config and fails the test on an error.
func config(t *testing.T, certFile, keyFile, dataDir string) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.Config(certFile, keyFile, dataDir, hostname)
	if err != nil {
		t.Fatalf("Config(%q, %q, %q): %v", certFile, keyFile, dataDir, err)
	}
	if len(cfg.Certificates) != 1 {
		t.Fatalf("Config has %d certificates, want 1", len(cfg.Certificates))
	}
	return cfg
}

// readCert parses the PEM certificate in file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate: %q", file, b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing %s: %v", file, err)
	}
	return c
}

func TestSelfSignedIsGeneratedAndKept(t *testing.T) {
	dir := t.TempDir()
	cfg := config(t, "", "", dir)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")

	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("the key was not written: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", keyFile, mode)
	}
	if _, err := os.Stat(certFile); err != nil {
		t.Fatalf("the certificate was not written: %v", err)
	}
	certPEM, _ := os.ReadFile(certFile)
	keyPEM, _ := os.ReadFile(keyFile)

	cert := readCert(t, certFile)
	if !bytes.Equal(cert.Raw, cfg.Certificates[0].Certificate[0]) {
		t.Error("the configuration does not serve the certificate written to tls.crt")
	}
	for _, name := range []string{hostname, "localhost"} {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not name %s: %v", name, err)
		}
		if !slices.Contains(cert.DNSNames, name) {
			t.Errorf("certificate DNS names %v lack %s", cert.DNSNames, name)
		}
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not name 127.0.0.1: %v", err)
	}
	if cert.Subject.CommonName != hostname {
		t.Errorf("certificate common name %q, want %q", cert.Subject.CommonName, hostname)
	}
	if now := time.Now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) || cert.NotAfter.Before(now.AddDate(1, 0, 0)) {
		t.Errorf("certificate valid %v to %v; want valid now and for at least a year", cert.NotBefore, cert.NotAfter)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("certificate extended key usage %v lacks server auth", cert.ExtKeyUsage)
	}
	// Self-signed: it verifies against itself as the only root.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: hostname, Roots: roots}); err != nil {
		t.Errorf("certificate does not verify as self-signed for %s: %v", hostname, err)
	}

	// A second call (a restart) keeps the same certificate and key.
	cfg2 := config(t, "", "", dir)
	certPEM2, _ := os.ReadFile(certFile)
	keyPEM2, _ := os.ReadFile(keyFile)
	if !bytes.Equal(certPEM, certPEM2) || !bytes.Equal(keyPEM, keyPEM2) {
		t.Error("a second Config rewrote tls.crt or tls.key")
	}
	if !bytes.Equal(cfg.Certificates[0].Certificate[0], cfg2.Certificates[0].Certificate[0]) {
		t.Error("a second Config serves a different certificate")
	}
}

func TestSelfSignedInUnwritableDirectoryFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does-not-exist")
	if _, err := tlsutil.Config("", "", dir, hostname); err == nil {
		t.Fatal("Config in a missing data directory succeeded")
	} else if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name %s", err, dir)
	}
}

// serve runs a TLS server with cfg on loopback that answers "ok" to every
// connection that completes the handshake.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				io.WriteString(c, "ok")
			}()
		}
	}()
	return l.Addr().String()
}

// dial does a TLS handshake with the given protocol versions and reads the
// server's "ok"; it returns the negotiated version.
func dial(addr string, minVersion, maxVersion uint16) (uint16, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, ServerName: hostname, MinVersion: minVersion, MaxVersion: maxVersion,
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if string(b) != "ok" {
		return 0, errors.New("server answered " + string(b))
	}
	return c.ConnectionState().Version, nil
}

func TestMinVersionIsTLS12(t *testing.T) {
	cfg := config(t, "", "", t.TempDir())
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %s, want TLS 1.2", tls.VersionName(cfg.MinVersion))
	}
	addr := serve(t, cfg)

	if v, err := dial(addr, tls.VersionTLS11, tls.VersionTLS11); err == nil {
		t.Errorf("a TLS 1.1-only client completed a handshake (%s)", tls.VersionName(v))
	} else if !strings.Contains(err.Error(), "version") {
		t.Errorf("a TLS 1.1-only client failed, but not for the protocol version: %v", err)
	}
	if v, err := dial(addr, tls.VersionTLS12, tls.VersionTLS12); err != nil || v != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client: version %s, %v; want a TLS 1.2 connection", tls.VersionName(v), err)
	}
	if v, err := dial(addr, tls.VersionTLS13, tls.VersionTLS13); err != nil || v != tls.VersionTLS13 {
		t.Errorf("TLS 1.3 client: version %s, %v; want a TLS 1.3 connection", tls.VersionName(v), err)
	}

	// The TLS 1.1 client itself works: against a server that allows 1.1
	// it connects, so the failure above is the configuration's doing.
	loose := cfg.Clone()
	loose.MinVersion = tls.VersionTLS10
	if v, err := dial(serve(t, loose), tls.VersionTLS11, tls.VersionTLS11); err != nil || v != tls.VersionTLS11 {
		t.Logf("note: this Go's TLS 1.1 client cannot connect even to a TLS 1.0+ server (%s, %v)", tls.VersionName(v), err)
	}
}

func TestExplicitFilesAreLoaded(t *testing.T) {
	// Make a certificate elsewhere, then load it by name from files with
	// other names.
	gen := t.TempDir()
	config(t, "", "", gen)
	want := readCert(t, filepath.Join(gen, "tls.crt"))

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	for src, dst := range map[string]string{filepath.Join(gen, "tls.crt"): certFile, filepath.Join(gen, "tls.key"): keyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := t.TempDir()
	cfg := config(t, certFile, keyFile, dataDir)
	if !bytes.Equal(cfg.Certificates[0].Certificate[0], want.Raw) {
		t.Error("Config does not serve the certificate in the given file")
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %s with explicit files, want TLS 1.2", tls.VersionName(cfg.MinVersion))
	}
	entries, _ := os.ReadDir(dataDir)
	if len(entries) != 0 {
		t.Errorf("with explicit files Config wrote %d files into the data directory", len(entries))
	}
	// It serves: a client handshakes with it.
	if _, err := dial(serve(t, cfg), tls.VersionTLS12, tls.VersionTLS13); err != nil {
		t.Errorf("handshake with the loaded certificate: %v", err)
	}
}

func TestMissingExplicitFileIsNamed(t *testing.T) {
	gen := t.TempDir()
	config(t, "", "", gen)
	cert, key := filepath.Join(gen, "tls.crt"), filepath.Join(gen, "tls.key")
	missing := filepath.Join(t.TempDir(), "no-such.pem")
	for _, c := range []struct{ name, cert, key string }{
		{"certificate", missing, key},
		{"key", cert, missing},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tlsutil.Config(c.cert, c.key, t.TempDir(), hostname)
			if err == nil {
				t.Fatalf("Config with a missing %s file succeeded", c.name)
			}
			if !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name the missing file %s", err, missing)
			}
		})
	}
}
