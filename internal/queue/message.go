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
	// LeaseOwner and LeaseUntil, when set at Enqueue, store the new message
	// already leased: the node that accepted it delivers it from memory
	// (the spool hands it over to its delivery worker) without claiming it
	// or reading it back. Should that node die, the lease runs out and any
	// node claims the message, as after any lease.
	LeaseOwner string
	LeaseUntil time.Time
	// Body is the whole message as it will be delivered (hve's headers
	// included). It is nil for messages claimed for delivery: local delivery
	// does not need it, and relays load it on their own.
	Body []byte
	// Due holds, in a claimed message, the recipients due for an attempt
	// (pending, or deferred with their next attempt due), in the order
	// they were added. Enqueue ignores it: every envelope recipient starts
	// pending.
	Due []Recipient
}

// RecipientState is where one recipient of a queued message stands.
type RecipientState string

// The recipient states. Pending and deferred recipients are open: delivery
// still has to deal with them. The others are final and never change again,
// so that a recipient a next hop accepted is never sent the message again.
const (
	// RecipientPending: not attempted yet.
	RecipientPending RecipientState = "pending"
	// RecipientDeferred: an attempt failed temporarily; the next one is
	// due at NextAttemptAt.
	RecipientDeferred RecipientState = "deferred"
	// RecipientDelivered: in the mailbox, or accepted by the next hop.
	RecipientDelivered RecipientState = "delivered"
	// RecipientFailed: refused for good, or out of time.
	RecipientFailed RecipientState = "failed"
	// RecipientExpanded: a distribution group; its members are recipients
	// of their own.
	RecipientExpanded RecipientState = "expanded"
)

// Open reports whether delivery still has to deal with the recipient.
func (s RecipientState) Open() bool { return s == RecipientPending || s == RecipientDeferred }

// Recipient is one recipient of a queued message and its delivery state:
// an envelope recipient, or a member of an envelope group that is
// delivered to a next hop (local copies of members need no state).
type Recipient struct {
	Address string `json:"address"`
	// Via is the group the recipient was expanded from; empty for
	// envelope recipients.
	Via   string         `json:"via"`
	State RecipientState `json:"state"`
	// Attempts counts delivery attempts that reached a verdict (a reply
	// of the next hop or a failure to talk to it).
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// LastReply is the last attempt's outcome: the next hop's reply, or
	// why there was none.
	LastReply string    `json:"last_reply"`
	UpdatedAt time.Time `json:"updated_at"`
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
