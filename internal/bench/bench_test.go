package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hve/internal/bench"
	"hve/internal/cli"
	"hve/internal/config"
	"hve/internal/directory"
	"hve/internal/oauth"
	"hve/internal/password"
	"hve/internal/server"
)

const (
	domain  = "bench.test"
	account = "app@" + domain
	secret  = "bench-password-1"
)

// node is a running hve with a domain, mailboxes m00@ .. m(n-1)@ and one
// HVE account.
type node struct {
	srv   *server.Server
	rcpts []string
}

func startNode(t *testing.T, mailboxes int) *node {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Hostname = "hve.bench.test"
	cfg.SMTP.Addr = "127.0.0.1:0"
	cfg.Admin.Addr = "127.0.0.1:0"
	cfg.Client.Addr = "127.0.0.1:0"
	srv, err := server.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tenant, err := srv.Store.TenantByName(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.AddDomain(ctx, directory.Domain{TenantID: tenant.ID, Name: domain, Type: directory.Authoritative}); err != nil {
		t.Fatal(err)
	}
	n := &node{srv: srv}
	for i := range mailboxes {
		addr := fmt.Sprintf("m%02d@%s", i, domain)
		if _, err := srv.Store.CreateMailbox(ctx, directory.Mailbox{TenantID: tenant.ID, Name: fmt.Sprintf("m%02d", i), DisplayName: "M", Address: addr}); err != nil {
			t.Fatal(err)
		}
		n.rcpts = append(n.rcpts, addr)
	}
	hash, err := password.Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.CreateAccount(ctx, directory.Account{TenantID: tenant.ID, Name: "app", DisplayName: "App",
		Address: account, PasswordHash: hash, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *node) config() bench.Config {
	return bench.Config{
		Addr: n.srv.SMTPAddr.String(), Conns: 4, Msgs: 200, Rcpts: 1, RcptList: n.rcpts, Size: 1024,
		User: account, Pass: secret, StartTLS: true, InsecureSkipVerify: true, Duration: time.Minute,
	}
}

func run(t *testing.T, cfg bench.Config) bench.Result {
	t.Helper()
	var log bytes.Buffer
	cfg.Log = &log
	res, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if log.Len() > 0 {
		t.Logf("errors:\n%s", log.String())
	}
	return res
}

func TestBenchAcceptsEveryMessage(t *testing.T) {
	n := startNode(t, 3)
	res := run(t, n.config())
	if res.Sent != 200 || res.Accepted != res.Sent {
		t.Errorf("sent %d, accepted %d; want 200 and 200", res.Sent, res.Accepted)
	}
	if res.Errors != 0 || len(res.Rejected) != 0 {
		t.Errorf("errors %d, rejected %v; want none", res.Errors, res.Rejected)
	}
	if res.P50Ms <= 0 || res.P99Ms < res.P50Ms || res.MsgsPerS <= 0 || res.ElapsedS <= 0 {
		t.Errorf("implausible measurements: %+v", res)
	}
	if res.Conns != 4 || res.Rcpts != 1 || res.Size != 1024 || res.Reconnect {
		t.Errorf("parameters not reported: %+v", res)
	}
	// Every accepted message is really in the queue or already delivered.
	ctx := context.Background()
	waitFor(t, func() bool {
		total := 0
		for _, addr := range n.rcpts {
			mb, err := n.srv.Store.MailboxByAddress(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := n.srv.Store.MailboxMessages(ctx, mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			total += len(msgs)
		}
		return total == 200
	})
}

func TestBenchMultipleRecipientsAndLargeBody(t *testing.T) {
	n := startNode(t, 10)
	cfg := n.config()
	cfg.Msgs, cfg.Rcpts, cfg.Size = 40, 10, 100*1024
	res := run(t, cfg)
	if res.Sent != 40 || res.Accepted != 40 || res.Errors != 0 || len(res.Rejected) != 0 {
		t.Errorf("got %+v; want 40 sent and accepted, nothing else", res)
	}
}

func TestBenchReconnectPerMessage(t *testing.T) {
	n := startNode(t, 1)
	cfg := n.config()
	cfg.Conns, cfg.Msgs, cfg.ReconnectPerMessage = 2, 6, true
	res := run(t, cfg)
	if res.Sent != 6 || res.Accepted != 6 || res.Errors != 0 || !res.Reconnect {
		t.Errorf("got %+v; want 6 sent and accepted over new connections", res)
	}
}

// TestBenchXOAUTH2 signs in with a token of hve's own token service.
func TestBenchXOAUTH2(t *testing.T) {
	n := startNode(t, 1)
	ctx := context.Background()
	tenant, err := n.srv.Store.TenantByName(ctx, directory.DefaultTenant)
	if err != nil {
		t.Fatal(err)
	}
	app, err := n.srv.Store.CreateApp(ctx, directory.App{TenantID: tenant.ID, Name: "bench", AppID: "11111111-2222-3333-4444-555555555555",
		ObjectID: "66666666-7777-8888-9999-000000000000", Permissions: []directory.Permission{directory.MailSend}})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := n.srv.Store.AccountByAddress(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	acc.AllowedApps = []string{app.AppID}
	if _, err := n.srv.Store.UpdateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	sec, _, err := oauth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := oauth.HashSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.srv.Store.AddAppSecret(ctx, tenant.ID, app.AppID, directory.AppSecret{Hint: sec[:3], Hash: hash, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm("http://"+n.srv.AdminAddr.String()+"/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {app.AppID}, "client_secret": {sec}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: HTTP %d, %v", resp.StatusCode, err)
	}
	token := tok.AccessToken
	cfg := n.config()
	cfg.Pass, cfg.Token = "", token
	cfg.Conns, cfg.Msgs, cfg.ReconnectPerMessage = 2, 6, true
	res := run(t, cfg)
	if res.Sent != 6 || res.Accepted != 6 || res.Errors != 0 {
		t.Errorf("got %+v; want 6 sent and accepted after XOAUTH2 sign-ins", res)
	}
	cfg.Token = token + "x" // the signature no longer verifies
	var log bytes.Buffer
	cfg.Log = &log
	res, err = bench.Run(ctx, cfg)
	if err == nil && res.Accepted != 0 || !strings.Contains(log.String()+fmt.Sprint(err), "XOAUTH2 as "+account+": 535") {
		t.Errorf("a bad token: %+v, %v, log %q; want the 535 sign-in refusal named", res, err, log.String())
	}
}

func TestBenchCountsRejectionsByCode(t *testing.T) {
	n := startNode(t, 51)

	// 51 distinct recipients: the 51st is over hve's limit of 50 (452), but
	// the message goes to the first 50.
	cfg := n.config()
	cfg.Conns, cfg.Msgs, cfg.Rcpts = 2, 10, 51
	res := run(t, cfg)
	if res.Sent != 10 || res.Accepted != 10 || res.Rejected["452"] != 10 || len(res.Rejected) != 1 || res.Errors != 0 {
		t.Errorf("over the recipient limit: got %+v; want 10 accepted and 10 times 452", res)
	}

	// Recipients outside the organisation are refused (550); nothing is sent.
	cfg = n.config()
	cfg.Conns, cfg.Msgs, cfg.RcptList = 2, 10, []string{"someone@example.com"}
	res = run(t, cfg)
	if res.Sent != 10 || res.Accepted != 0 || res.Rejected["550"] != 10 || res.Errors != 0 {
		t.Errorf("external recipient: got %+v; want 10 sent, 0 accepted, 10 times 550", res)
	}
}

func TestBenchStopsAfterDuration(t *testing.T) {
	n := startNode(t, 1)
	cfg := n.config()
	cfg.Conns, cfg.Msgs, cfg.Duration = 2, 1_000_000, time.Second
	res := run(t, cfg)
	if res.Sent == 0 || res.Sent >= 1_000_000 || res.Accepted != res.Sent || res.Errors != 0 {
		t.Errorf("got %+v; want some messages, all accepted, and a stop after 1s", res)
	}
	if res.ElapsedS < 1 || res.ElapsedS > 10 {
		t.Errorf("elapsed %.3fs; want about 1s", res.ElapsedS)
	}
	if _, err := bench.Run(context.Background(), bench.Config{Addr: "127.0.0.1:1", Conns: 1, Msgs: 1, Rcpts: 1,
		RcptList: []string{"a@b.test"}, From: "c@b.test", Duration: bench.MaxDuration + time.Second}); err == nil {
		t.Error("a duration over the cap was accepted")
	}
}

func TestBenchWrongPasswordEndsQuickly(t *testing.T) {
	n := startNode(t, 1)
	cfg := n.config()
	cfg.Pass = "wrong"
	start := time.Now()
	res := run(t, cfg)
	if res.Accepted != 0 || res.Sent != 0 || res.Errors == 0 {
		t.Errorf("got %+v; want errors and nothing sent", res)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a refused sign-in took %s to end the run", d)
	}
}

func TestBenchRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:587", "10.0.0.1:25", "[2001:db8::1]:587", "0.0.0.0:587", ":587"} {
		cfg := bench.Config{Addr: addr, Conns: 1, Msgs: 1, Rcpts: 1, RcptList: []string{"a@b.test"}, User: "u@b.test"}
		_, err := bench.Run(context.Background(), cfg)
		if !errors.Is(err, bench.ErrNotLoopback) {
			t.Errorf("%s: got error %v; want ErrNotLoopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:587", "127.1.2.3:587", "[::1]:587"} {
		if _, err := bench.CheckLoopback(context.Background(), addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}

	// The command says why and fails.
	var stdout, stderr bytes.Buffer
	code := cli.Run([]string{"bench", "--addr", "192.0.2.1:587", "--rcpt-list", "a@b.test", "--auth", "u@b.test:pw"},
		cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	if code == 0 || !strings.Contains(stderr.String(), "loopback") || stdout.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want a failure naming loopback", code, stdout.String(), stderr.String())
	}
}

func TestBenchCommand(t *testing.T) {
	n := startNode(t, 2)
	runCLI := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Run(append([]string{"bench", "--addr", n.srv.SMTPAddr.String(), "--auth", account + ":" + secret}, args...),
			cli.Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := runCLI("--conns", "3", "--msgs", "30", "--rcpts", "2", "--size", "2000", "--rcpt-list", strings.Join(n.rcpts, ","))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("want one JSON line, got %q", out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	for key, want := range map[string]float64{"sent": 30, "accepted": 30, "errors": 0, "conns": 3, "rcpts": 2, "size": 2000} {
		if res[key] != want {
			t.Errorf("%s = %v, want %v (%s)", key, res[key], want, out)
		}
	}
	for _, key := range []string{"rejected", "elapsed_s", "msgs_per_s", "p50_ms", "p99_ms"} {
		if _, ok := res[key]; !ok {
			t.Errorf("%s missing from %s", key, out)
		}
	}

	// Nothing accepted: the JSON line is still printed, and the exit code
	// says it failed.
	code, out, _ = runCLI("--conns", "1", "--msgs", "3", "--rcpt-list", "x@example.com")
	if code == 0 || !strings.Contains(out, `"rejected":{"550":3}`) {
		t.Errorf("external recipients: exit %d, output %q; want non-zero and three 550s", code, out)
	}

	// Usage errors.
	if code, _, _ := runCLI("--msgs", "3"); code != 2 {
		t.Errorf("without --rcpt-list: exit %d, want 2", code)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBenchIdleThenActive is workload W5: every connection is opened and
// signed in first, all stay idle together, then all send.
func TestBenchIdleThenActive(t *testing.T) {
	n := startNode(t, 2)
	cfg := n.config()
	cfg.Conns, cfg.Msgs, cfg.IdleFor = 30, 60, 300*time.Millisecond
	res := run(t, cfg)
	if res.OpenIdle != 30 || res.OpenAtOnce != 30 {
		t.Errorf("open while idle %d, at most %d; want all 30 open together (%+v)", res.OpenIdle, res.OpenAtOnce, res)
	}
	if res.IdleS < 0.3 || res.RampS <= 0 {
		t.Errorf("ramp %.3fs, idle %.3fs; want a ramp and at least 0.3s idle", res.RampS, res.IdleS)
	}
	if res.Sent != 60 || res.Accepted != 60 || res.Errors != 0 || len(res.Rejected) != 0 {
		t.Errorf("got %+v; want 60 sent and accepted, nothing else", res)
	}
	// The server saw them all at once: each got its own session.
	cfg.IdleFor, cfg.ReconnectPerMessage = time.Second, true
	if _, err := bench.Run(context.Background(), cfg); err == nil {
		t.Error("--idle-for with --reconnect-per-message was accepted")
	}
}

func TestBenchRate(t *testing.T) {
	n := startNode(t, 1)
	cfg := n.config()
	cfg.Conns, cfg.Msgs, cfg.Rate = 4, 20, 40 // 20 messages at 40/s: about half a second
	res := run(t, cfg)
	if res.Accepted != 20 || res.Errors != 0 {
		t.Errorf("got %+v; want 20 accepted", res)
	}
	if res.ElapsedS < 0.45 || res.MsgsPerS > 45 || res.Rate != 40 {
		t.Errorf("elapsed %.3fs, %.1f msgs/s; want paced to 40/s (about 0.5s)", res.ElapsedS, res.MsgsPerS)
	}
}

func TestSinks(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			cfg := bench.SinkConfig{Addr: "127.0.0.1:0"}
			if durable {
				cfg.Durable = t.TempDir()
			}
			s, err := bench.StartSink(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res := run(t, bench.Config{Addr: s.Addr().String(), Conns: 8, Msgs: 200, Rcpts: 2, RcptList: []string{"a@example.com", "b@example.com"},
				Size: 2000, User: "bench", Pass: "anything", From: "bench@example.com", StartTLS: true, InsecureSkipVerify: true, Duration: time.Minute})
			if res.Accepted != 200 || res.Errors != 0 || len(res.Rejected) != 0 {
				t.Errorf("got %+v; want 200 accepted", res)
			}
			st := s.Stats()
			if st.Messages != 200 || st.Rcpts != 400 || st.Bytes < 200*2000 || st.MaxOpen != 8 {
				t.Errorf("sink counted %+v; want 200 messages, 400 recipients, 8 sessions at once", st)
			}
			if durable {
				if st.Fsyncs < 1 || st.Fsyncs > 200 {
					t.Errorf("%d fsyncs for 200 messages", st.Fsyncs)
				}
				fi, err := os.Stat(filepath.Join(cfg.Durable, "sink.spool"))
				if err != nil || fi.Size() < 200*2000 {
					t.Errorf("spool: %v, %v; want every message in it", fi, err)
				}
			} else if st.Fsyncs != 0 {
				t.Errorf("the no-op sink fsynced %d times", st.Fsyncs)
			}
			// MAIL before AUTH is refused.
			res = run(t, bench.Config{Addr: s.Addr().String(), Conns: 1, Msgs: 1, Rcpts: 1, RcptList: []string{"a@example.com"},
				From: "x@example.com", StartTLS: true, InsecureSkipVerify: true, Duration: time.Minute})
			if res.Accepted != 0 || res.Rejected["530"] != 1 {
				t.Errorf("without AUTH: %+v; want one 530", res)
			}
		})
	}
	if _, err := bench.StartSink(bench.SinkConfig{Addr: "0.0.0.0:0"}); err == nil {
		t.Error("the sink listened on a non-loopback address")
	}
}
