package smtp

import (
	"bufio"
	"bytes"
	"io"
)

// dotWriter is net/textproto's DotWriter (the same output: a bare LF becomes
// CRLF, a leading dot is doubled, Close ends the data with ".\r\n"), but the
// middle of each line is copied in one go instead of one WriteByte per byte,
// which made relaying a 100 KB message cost more than receiving it.
type dotWriter struct {
	w     *bufio.Writer
	state int
}

// The states of dotWriter, as in net/textproto.
const (
	dotBegin     = iota // nothing written yet
	dotBeginLine        // at the start of a line
	dotCR               // wrote a CR, possibly the end of a line
	dotData             // in the middle of a line
)

var _ io.WriteCloser = (*dotWriter)(nil)

func newDotWriter(w *bufio.Writer) *dotWriter {
	return &dotWriter{w: w}
}

// Write implements io.Writer. It runs net/textproto's state machine on
// every CR and LF and at the start of each line, and copies the bytes in
// between in one go.
func (d *dotWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if d.state == dotData {
			// Up to the next CR or LF at once.
			rest := b[n:]
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				i = len(rest)
			}
			if j := bytes.IndexByte(rest[:i], '\r'); j >= 0 {
				i = j
			}
			if i > 0 {
				if _, err := d.w.Write(rest[:i]); err != nil {
					return n, err
				}
				n += i
				continue
			}
		}
		c := b[n]
		switch d.state {
		case dotBegin, dotBeginLine:
			d.state = dotData
			if c == '.' {
				// escape leading dot
				d.w.WriteByte('.')
			}
			fallthrough
		case dotData:
			if c == '\r' {
				d.state = dotCR
			}
			if c == '\n' {
				d.w.WriteByte('\r')
				d.state = dotBeginLine
			}
		case dotCR:
			d.state = dotData
			if c == '\n' {
				d.state = dotBeginLine
			}
		}
		if err := d.w.WriteByte(c); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Close ends the data: the last line is terminated if it was not, then the
// line with the single dot, and the buffer is flushed.
func (d *dotWriter) Close() error {
	switch d.state {
	case dotBegin, dotData:
		d.w.WriteByte('\r')
		fallthrough
	case dotCR:
		d.w.WriteByte('\n')
	}
	d.w.WriteString(".\r\n")
	return d.w.Flush()
}
