package cli

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprof(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "nohost"} {
		if stop, err := startPprof(addr, log); err == nil {
			stop()
			t.Errorf("--pprof %s was accepted; want loopback only", addr)
		}
	}
	stop, err := startPprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
}

// TestServePprof starts hve serve with --pprof and reads the profiler's
// index from it.
func TestPprofServesIndex(t *testing.T) {
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	stop, err := startPprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	_, url, ok := strings.Cut(logBuf.String(), "pprof=")
	if !ok {
		t.Fatalf("no address logged: %q", logBuf.String())
	}
	url = strings.TrimSpace(url)
	resp, err := http.Get(url + "cmdline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET %scmdline: %s", url, resp.Status)
	}
}
