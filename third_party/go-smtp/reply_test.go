package smtp

import (
	"bytes"
	"net"
	"testing"
)

// writeCounter is a net.Conn that keeps what is written to it, one entry
// per Write call.
type writeCounter struct {
	net.Conn // nil: only Write is called
	writes   [][]byte
}

func (w *writeCounter) Write(b []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(b))
	return len(b), nil
}

// A reply of several lines (EHLO's) goes out in one write, so in one TLS
// record, with the same bytes as before.
func TestMultilineReplyIsOneWrite(t *testing.T) {
	wc := &writeCounter{}
	c := newConn(wc, NewServer(nil))
	c.writeResponse(250, NoEnhancedCode, "mail.example Hello", "PIPELINING", "8BITMIME", "AUTH PLAIN")
	c.writeResponse(250, EnhancedCode{2, 1, 0}, "Sender OK")
	want := []string{
		"250-mail.example Hello\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n",
		"250 2.1.0 Sender OK\r\n",
	}
	if len(wc.writes) != len(want) {
		t.Fatalf("%d writes %q, want %d", len(wc.writes), wc.writes, len(want))
	}
	for i, w := range want {
		if string(wc.writes[i]) != w {
			t.Errorf("write %d = %q, want %q", i, wc.writes[i], w)
		}
	}
}
