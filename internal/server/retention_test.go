package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/server"
	"hve/internal/store/sqlite"
	"hve/internal/trace"
)

// TestTraceRetentionRuns: a node deletes trace events older than
// [trace] retention when it starts, and keeps the newer ones.
func TestTraceRetentionRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The default tenant: a node creates it only in an empty database.
	tn, err := st.CreateTenant(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = st.AddEvents(ctx, []trace.Event{
		{TenantID: tn.ID, Time: now.AddDate(0, 0, -31), Event: trace.EventRejected, Status: trace.StatusRejected, Detail: "old"},
		{TenantID: tn.ID, Time: now.AddDate(0, 0, -29), Event: trace.EventRejected, Status: trace.StatusRejected, Detail: "kept"},
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	n := startNodeWith(t, func(c *config.Config) {
		c.Data = dir
		c.Trace.Retention = "30d"
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, err := n.srv.Store.SearchTrace(ctx, trace.Query{TenantID: tn.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 1 && events[0].Detail == "kept" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace after start with retention 30d = %+v, want only the event of 29 days ago", events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTraceRetentionConfigError: a bad retention stops the node at start.
func TestTraceRetentionConfigError(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.SMTP.Addr, cfg.Client.Addr, cfg.Admin.Addr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Trace.Retention = "soon"
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("server.Start with [trace] retention = \"soon\" succeeded")
	}
	if !strings.Contains(err.Error(), "[trace] retention") {
		t.Errorf("server.Start error = %v, want one naming [trace] retention", err)
	}
}
