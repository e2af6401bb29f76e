package e2e

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smtpConn is one signed-in SMTP session of a Go client.
type smtpConn struct {
	raw net.Conn
	c   *smtp.Client
}

// dialSMTP connects, says EHLO, starts TLS and signs in with AUTH PLAIN
// as the seeded HVE account.
func dialSMTP(addr string) (*smtpConn, error) {
	return dialSMTPAs(addr, account, password)
}

// dialSMTPAs is dialSMTP signing in as user with pass.
func dialSMTPAs(addr, user, pass string) (*smtpConn, error) {
	raw, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(raw, host)
	if err != nil {
		raw.Close()
		return nil, err
	}
	sc := &smtpConn{raw: raw, c: c}
	if err := c.Hello("go.e2e.test"); err != nil {
		sc.close()
		return nil, err
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: serverName}); err != nil {
		sc.close()
		return nil, err
	}
	if err := c.Auth(smtp.PlainAuth("", user, pass, host)); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}

// send submits one message and returns the queue id of the 250 reply.
// net/smtp's Data discards the final reply's text, so DATA is spoken over
// the client's textproto connection.
func (sc *smtpConn) send(from string, rcpts []string, body string) (string, error) {
	sc.raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := sc.c.Mail(from); err != nil {
		return "", err
	}
	for _, r := range rcpts {
		if err := sc.c.Rcpt(r); err != nil {
			return "", err
		}
	}
	text := sc.c.Text
	id, err := text.Cmd("DATA")
	if err != nil {
		return "", err
	}
	text.StartResponse(id)
	_, _, err = text.ReadResponse(354)
	text.EndResponse(id)
	if err != nil {
		return "", err
	}
	w := text.DotWriter()
	if _, err := w.Write([]byte(body)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	_, msg, err := text.ReadResponse(250)
	if err != nil {
		return "", err
	}
	m := acceptedRe.FindStringSubmatch("250 " + msg)
	if m == nil {
		return "", fmt.Errorf("250 reply without a queue id: %q", msg)
	}
	return m[1], nil
}

func (sc *smtpConn) close() {
	sc.c.Close()
}

// crashMessage is one message of the crash test and what happened to it.
type crashMessage struct {
	subject string
	rcpts   []string // envelope
	expect  []string // the people it reaches
	// set by the one worker that sends it
	attempted bool
	acked     bool
	queueID   string
	err       string
}

// TestCrashRecovery sends a few hundred messages from concurrent clients,
// kills the server with SIGKILL while they are sending, restarts it on the
// same data directory and checks, once the queue has drained, that every
// message that got a 250 reached each of its recipients exactly once, and
// that any other message reached all of them exactly once or none at all.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	s := startSeeded(t)
	runCrashLoad(t, crashLoad{
		nodes: []*server{s},
		kill: func() {
			s.kill()
			t.Logf("killed hve serve with SIGKILL")
			s.start()
			t.Logf("restarted hve serve on the same data directory")
		},
		reader: s,
	})
}

// crashLoad describes one run of runCrashLoad.
type crashLoad struct {
	// nodes take the load: client worker i sends to nodes[i%len(nodes)],
	// and to the next node while that one does not answer.
	nodes []*server
	// kill is called once, after a third of the messages were
	// acknowledged, while clients go on sending.
	kill func()
	// reader is the node whose CLI reads mailboxes and trace at the end.
	reader *server
}

// runCrashLoad sends 300 messages (to nested groups and people) from 8
// concurrent clients, calls l.kill mid-run, and checks once the queue has
// drained that every message that got a 250 reached each of its
// recipients exactly once with complete trace (a Received event per
// envelope recipient, one Delivered per person), and that any other
// message reached all of its recipients exactly once or none at all.
func runCrashLoad(t *testing.T, l crashLoad) {
	const (
		total     = 300
		workers   = 8
		killAfter = 100
	)
	s := l.reader
	run := strconv.FormatInt(time.Now().UnixNano(), 36)

	msgs := make([]*crashMessage, total)
	for i := range msgs {
		m := &crashMessage{subject: fmt.Sprintf("crash %s %03d", run, i)}
		switch i % 3 {
		case 0: // the nested group, and bob again: everyone once
			m.rcpts, m.expect = []string{outerGroup, bob}, []string{alice, bob, carol}
		case 1: // the inner group, and carol again
			m.rcpts, m.expect = []string{innerGroup, carol}, []string{bob, carol}
		case 2:
			m.rcpts, m.expect = []string{alice, carol}, []string{alice, carol}
		}
		msgs[i] = m
	}
	body := func(i int) string {
		m := msgs[i]
		return "From: HR Notify <" + account + ">\r\n" +
			"To: " + strings.Join(m.rcpts, ", ") + "\r\n" +
			"Subject: " + m.subject + "\r\n" +
			fmt.Sprintf("Message-ID: <crash-%s-%03d@e2e.test>\r\n", run, i) +
			"\r\n" + strings.Repeat("Payroll run notice line for the crash test.\r\n", 40)
	}

	var next, acked atomic.Int64
	killNow := make(chan struct{})
	stopAt := time.Now().Add(3 * time.Minute) // bounds every worker
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc *smtpConn
			defer func() {
				if sc != nil {
					sc.c.Quit()
					sc.close()
				}
			}()
			node := w % len(l.nodes)
			for time.Now().Before(stopAt) {
				if sc == nil {
					var err error
					if sc, err = dialSMTP(l.nodes[node].smtp()); err != nil {
						sc = nil
						// That node is down: try the next, and wait a
						// little when there is only one (for its restart).
						node = (node + 1) % len(l.nodes)
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				m := msgs[i]
				m.attempted = true
				qid, err := sc.send(account, m.rcpts, body(i))
				if err != nil {
					m.err = err.Error()
					sc.close()
					sc = nil
					continue
				}
				m.acked, m.queueID = true, qid
				if acked.Add(1) == killAfter {
					close(killNow)
				}
			}
		}()
	}

	select {
	case <-killNow:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d of %d messages acknowledged within 2 minutes", acked.Load(), killAfter)
	}
	l.kill()
	ackedAtKill := acked.Load()
	t.Logf("kill after %d acknowledged messages (%d handed to clients)", ackedAtKill, next.Load())

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(stopAt) + 40*time.Second):
		t.Fatal("clients did not finish")
	}
	s.waitDrained(2 * time.Minute)

	// What each person holds, by message index.
	held := map[string]map[int][]mailboxMessage{}
	prefix := "crash " + run + " "
	for _, p := range people {
		held[p] = map[int][]mailboxMessage{}
		for _, mm := range s.messages(p) {
			n, ok := strings.CutPrefix(mm.Subject, prefix)
			i, err := strconv.Atoi(n)
			if !ok || err != nil || i < 0 || i >= total {
				t.Errorf("%s holds a message this test did not send: %+v", p, mm)
				continue
			}
			held[p][i] = append(held[p][i], mm)
		}
	}

	// Delivered trace events by queue id and recipient.
	events := s.trace("--since", "1h", "--limit", "100000")
	deliveredEv := map[string]map[string]int{}
	receivedEv := map[string]int{}
	for _, e := range events {
		switch e.Event {
		case "Delivered":
			if deliveredEv[e.QueueID] == nil {
				deliveredEv[e.QueueID] = map[string]int{}
			}
			deliveredEv[e.QueueID][e.Recipient]++
		case "Received":
			receivedEv[e.QueueID]++
		}
	}

	var nAcked, nFailed, nFailedDelivered, nUnsent int
	for i, m := range msgs {
		var gotBy []string
		var qids []string
		for _, p := range people {
			copies := held[p][i]
			if len(copies) > 1 {
				t.Errorf("message %d (%s) delivered %d times to %s: %+v", i, m.subject, len(copies), p, copies)
			}
			if len(copies) > 0 {
				gotBy = append(gotBy, p)
				if !slices.Contains(m.expect, p) {
					t.Errorf("message %d reached %s, who is not among its recipients %v", i, p, m.expect)
				}
			}
			for _, c := range copies {
				if !slices.Contains(qids, c.QueueID) {
					qids = append(qids, c.QueueID)
				}
			}
		}
		if len(qids) > 1 {
			t.Errorf("message %d was queued more than once: queue ids %v", i, qids)
		}
		full := len(gotBy) == len(m.expect)
		switch {
		case m.acked:
			nAcked++
			if !full {
				t.Errorf("message %d got 250 (queue id %s) but reached only %v of %v (err %q)", i, m.queueID, gotBy, m.expect, m.err)
			}
			if len(qids) == 1 && qids[0] != m.queueID {
				t.Errorf("message %d got 250 with queue id %s but was delivered as %s", i, m.queueID, qids[0])
			}
		case m.attempted:
			nFailed++
			if full {
				nFailedDelivered++
			} else if len(gotBy) != 0 {
				t.Errorf("message %d (no 250: %s) was delivered partly: to %v of %v", i, m.err, gotBy, m.expect)
			}
		default:
			nUnsent++
			if len(gotBy) != 0 {
				t.Errorf("message %d was never sent but reached %v", i, gotBy)
			}
		}
		if len(qids) == 1 {
			qid := qids[0]
			if receivedEv[qid] != len(m.rcpts) {
				t.Errorf("message %d (%s): %d Received trace events, want %d", i, qid, receivedEv[qid], len(m.rcpts))
			}
			for _, p := range m.expect {
				if n := deliveredEv[qid][p]; n != 1 {
					t.Errorf("message %d (%s): %d Delivered trace events for %s, want 1", i, qid, n, p)
				}
			}
			if len(deliveredEv[qid]) != len(m.expect) {
				t.Errorf("message %d (%s): Delivered trace events for %v, want %v", i, qid, deliveredEv[qid], m.expect)
			}
		}
	}
	t.Logf("%d messages: %d acknowledged (%d before the kill), %d failed in flight (%d of them delivered in full, the rest not at all), %d not sent",
		total, nAcked, ackedAtKill, nFailed, nFailedDelivered, nUnsent)
	if nAcked <= int(ackedAtKill) {
		t.Errorf("no message was acknowledged after the restart (%d acknowledged, %d before the kill)", nAcked, ackedAtKill)
	}
	if nAcked+nFailed+nUnsent != total || nUnsent != 0 {
		t.Errorf("clients did not send every message: %d acknowledged, %d failed, %d not sent", nAcked, nFailed, nUnsent)
	}
}
