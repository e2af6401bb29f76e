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

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/reply"
)

// envelope is what the session knows of a message besides its content.
type envelope struct {
	account  *directory.Account
	from     string
	rcpts    []string
	helo     string // the client's EHLO name
	clientIP string
	hostname string // this server's name
}

// prepare applies the content policy to a message as the client sent it and
// returns it ready for the spool: the header From must be the account, and
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
	acc := env.account
	qid := queue.NewID(now)

	if from := h.Get("From"); from == "" {
		h.Set("From", (&mail.Address{Name: acc.DisplayName, Address: acc.Address}).String())
	} else {
		list, err := addressParser.ParseList(from)
		if err != nil {
			return nil, reply.MalformedHeader.Format("From: " + err.Error())
		}
		for _, a := range list {
			if !acc.SendsAs(a.Address) {
				return nil, reply.HeaderFromDenied.Format(acc.Address, a.Address)
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
	if acc.ReplyTo != "" && !h.Has("Reply-To") {
		h.Set("Reply-To", acc.ReplyTo)
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
		TenantID:   acc.TenantID,
		AccountID:  acc.ID,
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
