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

// prepare applies the content policy to a message as the client sent it and
// returns it ready for the spool: the header From must be the account, and
// hve adds Received, and Message-ID, Date, From and Reply-To where missing.
func (s *session) prepare(raw []byte) (*queue.Message, *smtp.SMTPError) {
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, reply.MalformedHeader.Format(err.Error())
	}
	body := raw[len(raw)-rd.Len()-br.Buffered():]
	acc := s.account
	now := time.Now().UTC()
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
		msgID = strings.ToLower(qid) + "@" + s.e.cfg.Hostname
		h.Set("Message-Id", "<"+msgID+">")
	}
	if h.Get("Date") == "" {
		h.Set("Date", now.Format(time.RFC1123Z))
	}
	// A Reply-To the application set is kept; the account's is a default.
	if acc.ReplyTo != "" && !h.Has("Reply-To") {
		h.Set("Reply-To", acc.ReplyTo)
	}
	h.Add("Received", s.receivedHeader(qid, now))

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
		Sender:     s.from,
		Recipients: append([]string(nil), s.rcpts...),
		MessageID:  msgID,
		Subject:    subject,
		ClientIP:   s.clientIP,
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
func (s *session) receivedHeader(qid string, now time.Time) string {
	helo := s.conn.Hostname()
	if helo == "" {
		helo = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "from %s ([%s]) by %s (hve) with ESMTPSA id %s", helo, s.clientIP, s.e.cfg.Hostname, qid)
	if len(s.rcpts) == 1 {
		fmt.Fprintf(&b, " for <%s>", s.rcpts[0])
	}
	fmt.Fprintf(&b, "; %s", now.Format(time.RFC1123Z))
	return b.String()
}
