package postgres

import (
	"context"
	"strconv"
	"testing"
	"time"

	"hve/internal/directory"
	"hve/internal/store"
	"hve/internal/store/postgres/pgtest"
)

// listenFor starts listening on s until the test ends, and returns the
// revocations heard, once it listens.
func listenFor(t *testing.T, s *Store) <-chan store.Revocation {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	heard := make(chan store.Revocation, 10)
	listening := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ListenRevocations(ctx, store.RevocationListener{
			Revoked:   func(r store.Revocation) { heard <- r },
			Listening: func() { listening <- struct{}{} },
			Lost:      func(err error) { t.Logf("listener lost: %v", err) },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not start listening")
	}
	return heard
}

// TestRevocationsReachEveryNode: two nodes on one database; a revocation
// one publishes reaches both, and nothing reaches a node of another
// deployment (another schema) on the same server.
func TestRevocationsReachEveryNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	elsewhere := open(t, pgtest.DSN(t))
	heardA, heardB, heardElsewhere := listenFor(t, a), listenFor(t, b), listenFor(t, elsewhere)

	want := store.Revocation{TenantID: 7, Kind: directory.KindAccount, ID: 42, Node: "a"}
	if err := a.PublishRevocation(t.Context(), want); err != nil {
		t.Fatalf("PublishRevocation: %v", err)
	}
	for name, heard := range map[string]<-chan store.Revocation{"the other node": heardB, "the publisher": heardA} {
		select {
		case got := <-heard:
			if got != want {
				t.Errorf("%s heard %+v, want %+v", name, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not hear the revocation", name)
		}
	}
	// A second one, from the other node, so that the first has had time
	// to reach the other deployment if it wrongly would.
	second := store.Revocation{TenantID: 7, Kind: directory.KindMailbox, ID: 1, Node: "b"}
	if err := b.PublishRevocation(t.Context(), second); err != nil {
		t.Fatalf("PublishRevocation: %v", err)
	}
	if got := <-heardA; got != second {
		t.Errorf("heard %+v, want %+v", got, second)
	}
	select {
	case got := <-heardElsewhere:
		t.Errorf("a node of another schema heard %+v", got)
	default:
	}
}

// TestRevocationListenerReconnects: when its connection is cut, the
// listener listens again on a new one and hears what is published after.
func TestRevocationListenerReconnects(t *testing.T) {
	// The application name picks out this test's connections from those
	// of other tests on the server.
	name := "hvetest_reconnect_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s := open(t, pgtest.DSN(t)+"&application_name="+name)
	ctx, cancel := context.WithCancel(context.Background())
	heard := make(chan store.Revocation, 10)
	listening, lost := make(chan struct{}, 10), make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ListenRevocations(ctx, store.RevocationListener{
			Revoked:   func(r store.Revocation) { heard <- r },
			Listening: func() { listening <- struct{}{} },
			Lost: func(err error) {
				t.Logf("lost: %v", err)
				lost <- struct{}{}
			},
		})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("ListenRevocations did not return when its context ended")
		}
	}()
	wait := func(what string, c <-chan struct{}) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	wait("listening", listening)

	// Cut the listening connection from the server's side, as a database
	// restart or a network fault would.
	if _, err := s.pool.Exec(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN%'`, name); err != nil {
		t.Fatal(err)
	}
	wait("the lost connection", lost)
	wait("listening again", listening)
	want := store.Revocation{TenantID: 1, Kind: directory.KindAccount, ID: 2, Node: "n"}
	if err := s.PublishRevocation(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-heard:
		if got != want {
			t.Errorf("heard %+v, want %+v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing heard after reconnecting")
	}
}

// TestDirectoryChangesOfOtherNodesMoveTheVersion: a node that listens
// hears the directory changes of another node on the same database (not
// those of another deployment), so that its directory cache starts over.
func TestDirectoryChangesOfOtherNodesMoveTheVersion(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	elsewhere := open(t, pgtest.DSN(t))
	listenFor(t, b)
	listenFor(t, elsewhere)
	// Listening moved the versions; read them once settled.
	time.Sleep(200 * time.Millisecond)
	before, beforeElsewhere := b.DirectoryVersion(), elsewhere.DirectoryVersion()
	if _, err := a.CreateTenant(t.Context(), "announced"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.DirectoryVersion() == before {
		if time.Now().After(deadline) {
			t.Fatal("the other node's directory version did not move within 10s of a change")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if elsewhere.DirectoryVersion() != beforeElsewhere {
		t.Error("a node of another schema heard the change")
	}
}
