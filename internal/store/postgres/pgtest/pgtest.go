// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the server HVE_TEST_POSTGRES names (by default the local
// server every development and CI machine of the project runs,
// postgres://postgres@127.0.0.1:5432/postgres). A test that needs
// PostgreSQL fails when the server cannot be reached; it never skips, so
// that a CI machine without PostgreSQL cannot pass by leaving the
// PostgreSQL store untested.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the server used when HVE_TEST_POSTGRES is not set.
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Server returns the address of the test server.
func Server() string {
	if s := os.Getenv("HVE_TEST_POSTGRES"); s != "" {
		return s
	}
	return DefaultServer
}

// DSN creates an empty schema for the test, dropped when the test ends,
// and returns an address that makes it the only schema the store sees
// (search_path). Several processes given the DSN share the one schema, as
// several hve nodes share a database.
func DSN(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server := Server()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("PostgreSQL is needed for this test and is not reachable at %s (set HVE_TEST_POSTGRES to another server): %v", server, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	schema := "hvetest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating test schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("HVE_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
