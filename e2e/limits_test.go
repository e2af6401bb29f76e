package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// quotaScript sends one message per recipient from argv until the server
// refuses one, as an application would, and prints JSON: how many were
// accepted and the refusal's code and text.
const quotaScript = `
import json, smtplib, ssl, sys

host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rcpts = sys.argv[5].split(",")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
res = {"accepted": 0, "refused": None}
s = smtplib.SMTP(host, port, local_hostname="python.e2e.test", timeout=30)
s.starttls(context=ctx)
s.login(user, pw)
for r in rcpts:
    msg = "From: %s\r\nTo: %s\r\nSubject: quota\r\n\r\nHello.\r\n" % (user, r)
    try:
        s.sendmail(user, [r], msg)
        res["accepted"] += 1
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients[r]
        res["refused"] = [code, text.decode()]
        break
s.quit()
print(json.dumps(res))
`

// TestQuotaAndSignedAlert gives the HVE account a daily recipient limit of
// 3 with a warning level of 50% and a webhook receiver started by this test;
// a Python script sends until refused. It must get exactly three messages
// through, then the limit reply naming the limit, the account and the reset;
// the receiver must get the warning-level alert with a valid signature.
func TestQuotaAndSignedAlert(t *testing.T) {
	t.Parallel()
	python := requireTool(t, "python3", "python3")
	s := startSeeded(t)

	const secret = "e2e-webhook-secret-0123456789"
	var mu sync.Mutex
	var alerts []map[string]any
	var badSignature []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		mu.Lock()
		defer mu.Unlock()
		if !hmac.Equal([]byte(r.Header.Get("X-Hve-Signature")), []byte(want)) {
			badSignature = append(badSignature, string(body))
		} else if r.Header.Get("X-Hve-Event") == "alert" {
			var v map[string]any
			json.Unmarshal(body, &v)
			alerts = append(alerts, v)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	s.cli(secret+"\n", "webhook", "add", hook.URL, "--events", "alert", "--secret-stdin")
	s.cli("", "account", "set", account, "--daily-recipient-limit", "3", "--warn-at", "50")

	script := filepath.Join(t.TempDir(), "quota.py")
	if err := os.WriteFile(script, []byte(quotaScript), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.smtp(), ":")
	out, err := runTool(t, clientTimeout, nil, python, script, host, port, account, password,
		strings.Join([]string{alice, bob, carol, alice, bob}, ","))
	if err != nil {
		t.Fatalf("python script failed: %v\n%s", err, out)
	}
	var res struct {
		Accepted int   `json:"accepted"`
		Refused  []any `json:"refused"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("script output %q: %v", out, err)
	}
	if res.Accepted != 3 || len(res.Refused) != 2 {
		t.Fatalf("accepted %d, refused %v; want 3 accepted, then a refusal", res.Accepted, res.Refused)
	}
	text, _ := res.Refused[1].(string)
	if res.Refused[0] != float64(452) || !strings.HasPrefix(text, "4.5.3 Daily recipient limit of 3 reached for "+account) ||
		!strings.Contains(text, "resets at 00:00 UTC") {
		t.Errorf("refusal %v; want 452 4.5.3 Daily recipient limit of 3 reached for %s; resets at 00:00 UTC", res.Refused, account)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n, bad := len(alerts), len(badSignature)
		var first map[string]any
		if n > 0 {
			first = alerts[0]
		}
		mu.Unlock()
		if bad > 0 {
			t.Fatalf("%d webhook requests had a wrong signature", bad)
		}
		if n > 0 {
			b, _ := json.Marshal(first)
			if !strings.Contains(string(b), "warning_level") || !strings.Contains(string(b), account) {
				t.Errorf("alert %s; want a warning_level alert for %s", b, account)
			}
			if n != 1 {
				t.Errorf("%d alerts, want one (once per account and day)", n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no signed alert reached the webhook receiver within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
