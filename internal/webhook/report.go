package webhook

// Failure report mail: HVE sends no bounces, and hve by default neither.
// An account with a failure report address (hve account set A
// --failure-report-to ADDR) gets, for each of its messages that ended with
// failed recipients, one plain-text report at that internal address.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"

	"hve/internal/directory"
	"hve/internal/queue"
	"hve/internal/store"
	"hve/internal/trace"
)

// ReportHeader marks a failure report (its value is "failure"); with
// Auto-Submitted: auto-generated it tells mail systems and people that the
// message is automatic.
const ReportHeader = "X-Hve-Report"

// failureReports queues a report for each message among events that is
// finished (no recipient open), has failed recipients, and was sent by an
// account with a failure report address. It returns how many it queued.
//
// A message's report waits until its last open recipient is dealt with,
// so that it lists every failed recipient once; the event that finishes
// the message (Delivered or Failed) triggers it.
func (d *Dispatcher) failureReports(ctx context.Context, events []store.MeterEvent) (int, error) {
	type sender struct {
		tenant  int64
		address string
	}
	accounts := map[sender]*directory.Account{}
	done := map[string]bool{}
	queued := 0
	for _, me := range events {
		e := me.Event
		if e.Event != trace.EventDelivered && e.Event != trace.EventFailed {
			continue
		}
		// A report has the null sender: there is never a report about a
		// report, and the loop ends here.
		if e.QueueID == "" || e.Sender == "" || done[e.QueueID] {
			continue
		}
		k := sender{e.TenantID, strings.ToLower(e.Sender)}
		acc, ok := accounts[k]
		if !ok {
			var err error
			if acc, err = d.reportingAccount(ctx, k.tenant, k.address); err != nil {
				return queued, err
			}
			accounts[k] = acc
		}
		if acc == nil {
			continue
		}
		done[e.QueueID] = true
		rcpts, err := d.store.QueueRecipients(ctx, e.QueueID)
		if errors.Is(err, store.ErrNotFound) {
			// Deleted after [queue] keep_finished before this pass reached
			// its event: the dispatcher was further behind than that.
			d.log.Warn("failure report not queued: the message was deleted before its report", "queue_id", e.QueueID,
				"account", acc.Address, "finished_at", e.Time)
			continue
		}
		if err != nil {
			return queued, err
		}
		var failed []queue.Recipient
		open := false
		for _, r := range rcpts {
			open = open || r.State.Open()
			if r.State == queue.RecipientFailed {
				failed = append(failed, r)
			}
		}
		if open || len(failed) == 0 {
			continue
		}
		msg, evs := buildReport(d.Hostname, acc, e, failed, d.Now().UTC())
		err = d.store.Enqueue(ctx, []*queue.Message{msg}, evs)
		if errors.Is(err, store.ErrExists) {
			continue // queued before (a repeated pass, another node)
		}
		if err != nil {
			return queued, fmt.Errorf("queueing the failure report of %s: %w", e.QueueID, err)
		}
		queued++
		d.log.Info("failure report queued", "queue_id", e.QueueID, "report_queue_id", msg.QueueID, "account", acc.Address,
			"to", acc.FailureReportTo, "failed", len(failed))
	}
	return queued, nil
}

// reportingAccount returns the HVE account that sends as address in the
// tenant when it has a failure report address; nil otherwise.
func (d *Dispatcher) reportingAccount(ctx context.Context, tenantID int64, address string) (*directory.Account, error) {
	e, err := d.store.Lookup(ctx, address)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up sender %s: %w", address, err)
	}
	if e.TenantID != tenantID || e.Kind != directory.KindAccount {
		return nil, nil
	}
	acc, err := d.store.Account(ctx, tenantID, e.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading account %s: %w", address, err)
	}
	if acc.FailureReportTo == "" {
		return nil, nil
	}
	return &acc, nil
}

// ReportQueueID is the queue id of the failure report of the message with
// queue id orig: the original's time part (so that it sorts near it) and
// ten characters of a hash, so that every node derives the same id and the
// queue holds the report once.
func ReportQueueID(orig string) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	sum := sha256.Sum256([]byte("hve failure report\x00" + orig))
	var b strings.Builder
	prefix := orig
	if len(prefix) > 10 {
		prefix = prefix[:10]
	}
	b.WriteString(prefix)
	for i := 0; b.Len() < 20; i++ {
		b.WriteByte(alphabet[sum[i]&31])
	}
	return b.String()
}

// buildReport makes the report message of a finished message of acc
// (whose Delivered or Failed event is e) with failed recipients, and its
// trace events. The envelope sender is null (<>), as for any delivery report:
// nothing is ever sent back about it. The From header is postmaster of the
// report address's domain, an accepted domain of the tenant.
func buildReport(hostname string, acc *directory.Account, e trace.Event, failed []queue.Recipient, now time.Time) (*queue.Message, []trace.Event) {
	to := acc.FailureReportTo
	qid := ReportQueueID(e.QueueID)
	domain := to[strings.LastIndexByte(to, '@')+1:]
	msgID := strings.ToLower(qid) + "@" + hostname
	subject := "Delivery failed: " + e.Subject
	if e.Subject == "" {
		subject = "Delivery failed: message " + e.QueueID
	}

	var body strings.Builder
	fmt.Fprintf(&body, "hve could not deliver a message from %s to %d recipient(s).\n", e.Sender, len(failed))
	fmt.Fprintf(&body, "These recipients failed for good and will not be tried again:\n\n")
	for _, r := range failed {
		fmt.Fprintf(&body, "  %s\n", r.Address)
		if r.Via != "" {
			fmt.Fprintf(&body, "    member of: %s\n", r.Via)
		}
		if !r.UpdatedAt.IsZero() {
			fmt.Fprintf(&body, "    failed at: %s\n", r.UpdatedAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(&body, "    reason:    %s\n\n", oneLine(r.LastReply))
	}
	fmt.Fprintf(&body, "The message:\n\n")
	fmt.Fprintf(&body, "  queue id:   %s\n", e.QueueID)
	fmt.Fprintf(&body, "  message id: <%s>\n", e.MessageID)
	fmt.Fprintf(&body, "  sender:     %s\n", e.Sender)
	fmt.Fprintf(&body, "  subject:    %s\n\n", oneLine(e.Subject))
	fmt.Fprintf(&body, "Message trace has every step: hve trace --queue-id %s\n\n", e.QueueID)
	fmt.Fprintf(&body, "This report goes to %s because it is the failure report address of\n", to)
	fmt.Fprintf(&body, "the HVE account %s (hve account set %s --failure-report-to none\nturns it off).\n", acc.Address, acc.Address)

	var raw bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&raw, "%s: %s\r\n", k, v) }
	header("From", (&mail.Address{Name: "hve delivery reports", Address: "postmaster@" + domain}).String())
	header("To", "<"+to+">")
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(subject)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-Id", "<"+msgID+">")
	header("Auto-Submitted", "auto-generated")
	header(ReportHeader, "failure")
	header("X-Hve-Original-Queue-Id", e.QueueID)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	raw.WriteString("\r\n")
	raw.WriteString(strings.ReplaceAll(body.String(), "\n", "\r\n"))

	msg := &queue.Message{QueueID: qid, TenantID: e.TenantID, Sender: "", Recipients: []string{to}, MessageID: msgID,
		Subject: oneLine(subject), Size: int64(raw.Len()), ReceivedAt: now, Body: raw.Bytes()}
	ev := trace.Event{TenantID: e.TenantID, Time: now, QueueID: qid, MessageID: msgID, Recipient: to, Event: trace.EventReceived,
		Status: trace.StatusPending, Detail: fmt.Sprintf("failure report of %s (%d failed recipient(s)), queued by hve", e.QueueID, len(failed)),
		Subject: msg.Subject, Size: msg.Size}
	return msg, []trace.Event{ev}
}

// oneLine keeps a header value or a reply on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
