package smtpd

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
)

var fuzzEnv = envelope{
	sender: &sender{accountID: 7, tenantID: 1, address: "app@contoso.test", aliases: []string{"alerts@contoso.test"},
		displayName: "App", replyTo: "team@contoso.test"},
	from:     "app@contoso.test",
	rcpts:    []string{"alice@contoso.test"},
	helo:     "client.example",
	clientIP: "192.0.2.1",
	hostname: "hve.test",
}

// FuzzPrepare feeds arbitrary content to the content policy. It must never
// panic, and what it accepts must be a well-formed message that keeps the
// client's body byte for byte, starts with hve's Received header and has a
// From that the account may use.
func FuzzPrepare(f *testing.F) {
	for _, seed := range []string{
		"From: app@contoso.test\r\nSubject: hi\r\n\r\nbody\r\n",
		"Subject: no from\r\n\r\nbody",
		"From: \"App\" <alerts@contoso.test>\r\nReply-To: x@y.test\r\nMessage-ID: <a@b>\r\n\r\n",
		"From: bob@contoso.test\r\n\r\n",
		"From: =?utf-8?q?App?= <APP@contoso.test>\n\nbare LF\n",
		"not a header\r\n\r\n",
		"From: app@contoso.test, bob@contoso.test\r\n\r\n",
		"X: folded\r\n  value\r\nFrom: app@contoso.test\r\n\r\n.\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, rerr := prepare(raw, fuzzEnv, now)
		if rerr != nil {
			if rerr.Code < 500 || strings.ContainsAny(rerr.Message, "\r\n") {
				t.Fatalf("refusal %d %q: want a permanent one-line reply", rerr.Code, rerr.Message)
			}
			return
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg.Body)))
		if err != nil {
			t.Fatalf("accepted message does not parse: %v\n%q", err, msg.Body)
		}
		if !bytes.HasPrefix(msg.Body, []byte("Received: from client.example ([192.0.2.1]) by hve.test (hve)")) {
			t.Fatalf("message does not start with hve's Received header:\n%q", msg.Body)
		}
		from, err := addressParser.ParseList(h.Get("From"))
		if err != nil || len(from) == 0 {
			t.Fatalf("accepted message has From %q (%v)", h.Get("From"), err)
		}
		for _, a := range from {
			if !fuzzEnv.sender.sendsAs(a.Address) {
				t.Fatalf("accepted a From of %s", a.Address)
			}
		}
		if h.Get("Message-Id") == "" || h.Get("Date") == "" || !h.Has("Reply-To") {
			t.Fatalf("Message-ID, Date or Reply-To missing:\n%q", msg.Body)
		}
		if msg.Size != int64(len(msg.Body)) || msg.Sender != fuzzEnv.from || len(msg.Recipients) != 1 {
			t.Fatalf("envelope facts wrong: %+v", msg)
		}
	})
}

func TestPrepareKeepsBody(t *testing.T) {
	body := "line one\r\n\r\n.dot line\r\nlast"
	msg, rerr := prepare([]byte("From: app@contoso.test\r\nSubject: s\r\n\r\n"+body), fuzzEnv, time.Now())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !bytes.HasSuffix(msg.Body, []byte("\r\n\r\n"+body)) {
		t.Errorf("body not kept:\n%q", msg.Body)
	}
	if msg.Subject != "s" || msg.MessageID == "" {
		t.Errorf("subject %q, message id %q", msg.Subject, msg.MessageID)
	}
}
