package smtpd

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"hve/internal/queue"
	"hve/internal/reply"
)

// sender is the identity a message is sent as: an HVE account (HVE
// endpoint) or a mailbox (standard client endpoint).
type sender struct {
	tenantID int64
	// accountID is the HVE account's id, mailboxID the mailbox's; the
	// other is 0. A mailbox gets a Sent Items copy of what it sends.
	accountID, mailboxID int64
	displayName          string
	address              string
	aliases              []string
	// replyTo is added to messages that have no Reply-To (HVE accounts
	// only; a mailbox has none).
	replyTo string
}

// sendsAs reports whether addr is the sender's primary address or one of
// its aliases, the only addresses it may use as envelope or header sender.
func (s *sender) sendsAs(addr string) bool {
	addr = strings.ToLower(addr)
	if addr == s.address {
		return true
	}
	for _, alias := range s.aliases {
		if addr == alias {
			return true
		}
	}
	return false
}

// envelope is what the session knows of a message besides its content.
type envelope struct {
	sender   *sender
	from     string
	rcpts    []string
	helo     string // the client's EHLO name
	clientIP string
	hostname string // this server's name
}

// prepare applies the content policy to a message as the client sent it and
// returns it ready for the spool: the header From must be the sender, and
// hve adds Received, and Message-ID, Date, From and Reply-To where missing.
// It depends on nothing but its arguments, so it can be fuzzed.
func prepare(raw []byte, env envelope, now time.Time) (*queue.Message, *smtp.SMTPError) {
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, reply.MalformedHeader.Format(err.Error())
	}
	body := raw[len(raw)-rd.Len()-br.Buffered():]
	snd := env.sender
	qid := queue.NewID(now)

	if from := h.Get("From"); from == "" {
		h.Set("From", (&mail.Address{Name: snd.displayName, Address: snd.address}).String())
	} else {
		list, err := addressParser.ParseList(from)
		if err != nil {
			return nil, reply.MalformedHeader.Format("From: " + err.Error())
		}
		for _, a := range list {
			if !snd.sendsAs(a.Address) {
				return nil, reply.HeaderFromDenied.Format(snd.address, a.Address)
			}
		}
	}
	msgID := strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	if msgID == "" {
		msgID = strings.ToLower(qid) + "@" + env.hostname
		h.Set("Message-Id", "<"+msgID+">")
	}
	if h.Get("Date") == "" {
		h.Set("Date", now.Format(time.RFC1123Z))
	}
	// A Reply-To the application set is kept; the account's is a default.
	if snd.replyTo != "" && !h.Has("Reply-To") {
		h.Set("Reply-To", snd.replyTo)
	}
	h.Add("Received", receivedHeader(env, qid, now))

	var out bytes.Buffer
	out.Grow(len(raw) + 512)
	if err := textproto.WriteHeader(&out, h); err != nil {
		return nil, reply.MalformedHeader.Format(err.Error())
	}
	out.Write(body)

	subject, err := wordDecoder.DecodeHeader(h.Get("Subject"))
	if err != nil {
		subject = h.Get("Subject")
	}
	return &queue.Message{
		QueueID:    qid,
		TenantID:   snd.tenantID,
		AccountID:  snd.accountID,
		MailboxID:  snd.mailboxID,
		Sender:     env.from,
		Recipients: append([]string(nil), env.rcpts...),
		MessageID:  msgID,
		Subject:    subject,
		ClientIP:   env.clientIP,
		Size:       int64(out.Len()),
		ReceivedAt: now,
		Body:       out.Bytes(),
	}, nil
}

var (
	wordDecoder   = &mime.WordDecoder{}
	addressParser = &mail.AddressParser{WordDecoder: wordDecoder}
)

// receivedHeader names the client, this server and the queue id (RFC 5321
// section 4.4); ESMTPSA says the client used TLS and signed in (RFC 3848).
func receivedHeader(env envelope, qid string, now time.Time) string {
	helo := env.helo
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "from %s ([%s]) by %s (hve) with ESMTPSA id %s", helo, env.clientIP, env.hostname, qid)
	if len(env.rcpts) == 1 {
		fmt.Fprintf(&b, " for <%s>", env.rcpts[0])
	}
	fmt.Fprintf(&b, "; %s", now.Format(time.RFC1123Z))
	return b.String()
}
