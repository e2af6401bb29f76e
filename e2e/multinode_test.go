package e2e

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hve/internal/store/postgres/pgtest"
)

// startNodes starts n hve serve processes, each with its own data
// directory and ports, on one PostgreSQL schema, as a deployment of
// several nodes behind a load balancer would run. The delivery lease is
// short so that a dead node's claimed messages are taken over quickly.
func startNodes(t *testing.T, n int) []*server {
	t.Helper()
	conf := fmt.Sprintf("store = %q\n[delivery]\nlease = \"4s\"\n", pgtest.DSN(t))
	nodes := make([]*server, n)
	for i := range nodes {
		nodes[i] = startServerWith(t, conf)
	}
	return nodes
}

// TestTwoNodesOneKilled spreads a load over two nodes on one PostgreSQL
// and kills one with SIGKILL mid-run: the other delivers what the dead one
// had accepted (its claimed messages once their lease passed), every
// accepted message reaches each recipient exactly once, and trace is
// complete (runCrashLoad checks all of it through the surviving node).
func TestTwoNodesOneKilled(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.seed() // through node a; node b sees the directory through the database
	runCrashLoad(t, crashLoad{
		nodes: nodes,
		kill: func() {
			a.kill()
			t.Logf("killed node a with SIGKILL; node b goes on alone")
		},
		reader: b,
	})
}

// TestTwoNodesQuotaExact: clients on two nodes send as one account until
// both nodes refuse with the account's daily recipient limit; exactly the
// limit was accepted, not one more (nodes lease quota in blocks from the
// database and give back what they do not use).
func TestTwoNodesQuotaExact(t *testing.T) {
	t.Parallel()
	const limit = 120
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.seed()
	b.cli("", "account", "set", account, "--daily-recipient-limit", fmt.Sprint(limit))

	const workers = 6
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			node := nodes[w%len(nodes)]
			sc, err := dialSMTP(node.smtp())
			if err != nil {
				errs <- err
				return
			}
			defer sc.close()
			for i := 0; i < 2*limit; i++ {
				body := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: quota %d/%d\r\n\r\nhello\r\n", account, alice, w, i)
				_, err := sc.send(account, []string{alice}, body)
				var te *textproto.Error
				switch {
				case err == nil:
					accepted.Add(1)
					continue
				case errors.As(err, &te) && te.Code == 452 && strings.Contains(te.Msg, "Daily recipient limit"):
					refused.Add(1)
					sc.c.Reset()
					return
				}
				errs <- fmt.Errorf("worker %d on %s: %w", w, node.smtp(), err)
				return
			}
			errs <- fmt.Errorf("worker %d was never refused after %d messages", w, 2*limit)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := accepted.Load(); got != limit {
		t.Errorf("two nodes accepted %d recipients for an account limited to %d a day; want exactly the limit", got, limit)
	}
	if refused.Load() != workers {
		t.Errorf("%d of %d clients were refused with the daily limit", refused.Load(), workers)
	}
	b.waitDrained(time.Minute)
	if n := len(b.messages(alice)); n != limit {
		t.Errorf("alice holds %d messages, want %d", n, limit)
	}
}

// TestTwoNodesDirectoryChange: a change made through one node's admin API
// takes effect at the next sign-in on the other node, and an open session
// on the other node is ended by the revocation. The bound is the settings
// cache (docs/several-nodes.md): sign-ins read the directory every time.
func TestTwoNodesDirectoryChange(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.seed()

	open, err := dialSMTP(b.smtp())
	if err != nil {
		t.Fatalf("signing in on node b: %v", err)
	}
	defer open.close()

	// A new password, set on node a: node b refuses the old one and takes
	// the new one at the next sign-in, and ends the session that signed in
	// with the old one.
	const newPassword = "e2e-Changed-Passw0rd"
	a.cli(newPassword+"\n", "account", "set", account, "--password-stdin", "--revoke-sessions")
	if _, err := dialSMTP(b.smtp()); err == nil {
		t.Errorf("node b accepted the old password after node a changed it")
	} else if !strings.Contains(err.Error(), "535") {
		t.Errorf("node b refused the old password with %v; want 535", err)
	}
	c, err := dialSMTPAs(b.smtp(), account, newPassword)
	if err != nil {
		t.Fatalf("node b refused the new password set through node a: %v", err)
	}
	c.close()
	eventually(t, 5*time.Second, "the session open on node b ends", func() (bool, string) {
		err := open.c.Noop()
		return err != nil, fmt.Sprintf("NOOP on the old session: %v", err)
	})

	// Disabled on node b: node a refuses the next sign-in.
	b.cli("", "account", "set", account, "--enabled", "false")
	if _, err := dialSMTPAs(a.smtp(), account, newPassword); err == nil {
		t.Errorf("node a accepted a sign-in of an account node b disabled")
	}
}
