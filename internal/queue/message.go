// Package queue holds the durable spool: messages accepted at submission wait
// here until delivery has dealt with every recipient.
package queue

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"time"
)

// Message is a queued message: its envelope, a few header facts that trace
// shows, and (when loaded) its content.
type Message struct {
	QueueID    string
	TenantID   int64
	AccountID  int64
	Sender     string
	Recipients []string
	MessageID  string
	Subject    string
	ClientIP   string
	Size       int64
	ReceivedAt time.Time
	// MailboxID is the sending mailbox for messages submitted on the
	// standard client endpoint (0 for HVE accounts): the store puts a copy
	// in its Sent Items when it enqueues the message.
	MailboxID int64
	// NotBefore delays the first delivery attempt (pacing of mailboxes
	// over their message rate); zero means at once.
	NotBefore time.Time
	// Body is the whole message as it will be delivered (hve's headers
	// included). It is nil for messages claimed for delivery: local delivery
	// does not need it, and relays load it on their own.
	Body []byte
}

// NewID returns a fresh queue id: 20 characters of Crockford base32 whose
// first ten encode the time in milliseconds, so ids sort by arrival and never
// need a central counter (several nodes can make them).
func NewID(now time.Time) string {
	var b [13]byte // 6 bytes of time, 7 random
	ms := uint64(now.UnixMilli())
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], ms)
	copy(b[:6], t[2:])
	if _, err := rand.Read(b[6:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on supported platforms
	}
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var out strings.Builder
	var acc uint64
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out.WriteByte(alphabet[(acc>>uint(bits))&31])
		}
	}
	if bits > 0 {
		out.WriteByte(alphabet[(acc<<uint(5-bits))&31])
	}
	return out.String()[:20]
}

// CleanID accepts a queue id as a person may paste it from an SMTP reply,
// with or without the angle brackets.
func CleanID(s string) string {
	return strings.ToUpper(strings.Trim(strings.TrimSpace(s), "<>"))
}
