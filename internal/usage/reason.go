package usage

import (
	"fmt"
	"strings"
	"sync"

	"hve/internal/reply"
)

// ReasonOther names a refusal whose reply line matches no reply of package
// reply (a reply text changed since the event was written, say).
const ReasonOther = "other"

// pattern is what a reply's line starts with: its codes and the text up to
// its first formatting verb.
type pattern struct {
	prefix string
	name   string
}

var (
	patternsOnce sync.Once
	patterns     []pattern
)

// loadPatterns builds the patterns once, from the reply table as it is
// when the first refusal is counted (every reply is declared by then).
func loadPatterns() {
	for _, r := range reply.Own {
		if r.Code < 400 {
			continue // not a refusal
		}
		text, _, _ := strings.Cut(r.Text, "%")
		e := r.Enhanced
		patterns = append(patterns, pattern{
			prefix: fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], text),
			name:   r.Name,
		})
	}
}

// Reason maps a refusal's reply line (a Rejected trace event's Detail, as
// reply.Line renders it) to the stable name of the reply, so that refusals
// are counted by reason however their text was filled in. Several replies
// share codes, so the longest matching prefix wins.
func Reason(line string) string {
	patternsOnce.Do(loadPatterns)
	best, bestLen := ReasonOther, 0
	for _, p := range patterns {
		if len(p.prefix) > bestLen && strings.HasPrefix(line, p.prefix) {
			best, bestLen = p.name, len(p.prefix)
		}
	}
	return best
}
