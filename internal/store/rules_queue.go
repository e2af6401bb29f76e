package store

import (
	"fmt"
	"strings"

	"hve/internal/queue"
	"hve/internal/trace"
)

// Rules of the queue, queue control and trace search that every store
// applies the same way.

// SubjectPattern is the LIKE pattern (with escape character \) of a trace
// subject filter: the text lowered and its LIKE wildcards escaped, so that
// "50%" matches a literal "50%". Stores compare it with the stored subject
// lowered the same way (hve_fold).
func SubjectPattern(subject, match string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(subject))
	switch match {
	case trace.SubjectStartsWith:
		return esc + "%"
	case trace.SubjectEndsWith:
		return "%" + esc
	}
	return "%" + esc + "%"
}

// Check rejects (ErrInvalid) a queue control that names no known action,
// applies an action other than retry to the whole queue, or names no
// message.
func (c QueueControl) Check() error {
	switch c.Action {
	case QueueHold, QueueRelease, QueueRetry, QueueDelete:
	default:
		return fmt.Errorf("%w: queue action %q", ErrInvalid, c.Action)
	}
	if c.All && c.Action != QueueRetry {
		return fmt.Errorf("%w: only retry applies to the whole queue", ErrInvalid)
	}
	if !c.All && c.QueueID == "" {
		return fmt.Errorf("%w: no queue id", ErrInvalid)
	}
	return nil
}

// NotQueuedError is the error of a queue control naming a message that is
// not in the tenant's queue.
func NotQueuedError(queueID string) error {
	return fmt.Errorf("%w: message %s is not in the queue (delivered, failed, deleted, or never here)", ErrNotFound, queueID)
}

// QueuedMessage is a message in the queue as queue control sees it: what
// its trace events repeat, and whether an admin holds it.
type QueuedMessage struct {
	QueueID, MessageID, Sender, Subject, ClientIP string
	Size                                          int64
	Held                                          bool
	HeldBy                                        string
}

// Applies rejects (ErrInvalid) the action of c on m when it does not
// apply: holding a held message, releasing one not held, retrying a held
// one.
func (m QueuedMessage) Applies(c QueueControl) error {
	switch {
	case c.Action == QueueHold && m.Held:
		return fmt.Errorf("%w: message %s is held already (by %s)", ErrInvalid, m.QueueID, m.HeldBy)
	case c.Action == QueueRelease && !m.Held:
		return fmt.Errorf("%w: message %s is not held", ErrInvalid, m.QueueID)
	case c.Action == QueueRetry && m.Held:
		return fmt.Errorf("%w: message %s is held (by %s); release it, which makes it due at once", ErrInvalid, m.QueueID, m.HeldBy)
	}
	return nil
}

// DeleteReason is the last reply of the recipients an admin's delete
// failed.
func DeleteReason(actor string) string {
	return "deleted from the queue by admin " + actor
}

// ControlEvents are the trace events of c on m, one for each of its open
// recipients rcpts.
func (m QueuedMessage) ControlEvents(c QueueControl, rcpts []string) []trace.Event {
	var name, status, detail string
	switch {
	case c.Action == QueueHold:
		name, status, detail = trace.EventHeld, trace.StatusPending,
			"held by admin "+c.Actor+": delivery skips the message until it is released"
	case c.Action == QueueRelease:
		name, status, detail = trace.EventReleased, trace.StatusPending, "released by admin "+c.Actor+": the next attempt is due at once"
	case c.Action == QueueRetry && c.All && c.Domain != "":
		name, status, detail = trace.EventRetried, trace.StatusPending,
			"retry of the queue for "+strings.ToLower(c.Domain)+" requested by admin "+c.Actor+": the next attempt is due at once"
	case c.Action == QueueRetry && c.All:
		name, status, detail = trace.EventRetried, trace.StatusPending,
			"retry of the whole queue requested by admin "+c.Actor+": the next attempt is due at once"
	case c.Action == QueueRetry:
		name, status, detail = trace.EventRetried, trace.StatusPending, "retry requested by admin "+c.Actor+": the next attempt is due at once"
	case c.Action == QueueDelete:
		name, status, detail = trace.EventFailed, trace.StatusFailed, DeleteReason(c.Actor)+"; it was not delivered to this recipient"
	}
	events := make([]trace.Event, 0, len(rcpts))
	for _, r := range rcpts {
		events = append(events, trace.Event{TenantID: c.TenantID, Time: c.Now.UTC(), QueueID: m.QueueID, MessageID: m.MessageID,
			Sender: m.Sender, Recipient: r, Event: name, Status: status, Detail: detail, ClientIP: m.ClientIP, Subject: m.Subject, Size: m.Size})
	}
	return events
}

// Summarize sets the Status, Attempts and LastReply of an item read from
// a store from its Recipients (which it makes non-nil): held tells whether
// an admin holds the message, active whether a delivery node holds its
// lease.
func (it *QueueItem) Summarize(held, active bool) {
	deferred := false
	var latest int64
	for _, rc := range it.Recipients {
		if !rc.State.Open() {
			continue
		}
		deferred = deferred || rc.State == queue.RecipientDeferred
		it.Attempts = max(it.Attempts, rc.Attempts)
		var at int64 // the zero time counts as 0, as stores keep it
		if !rc.UpdatedAt.IsZero() {
			at = rc.UpdatedAt.UnixNano()
		}
		if rc.LastReply != "" && at >= latest {
			latest, it.LastReply = at, rc.LastReply
		}
	}
	switch {
	case held:
		it.Status = QueueHeld
	case active:
		it.Status = QueueActive
	case deferred:
		it.Status = QueueDeferred
	default:
		it.Status = QueuePending
	}
	if it.Recipients == nil {
		it.Recipients = []queue.Recipient{}
	}
}
