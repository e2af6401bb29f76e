package queue

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMinFreeDisk is the default of [queue] min_free_disk: below 1 GiB
// of free space on the data directory's filesystem, submission stops
// accepting mail.
const DefaultMinFreeDisk = "1GiB"

// SpaceThreshold is the least free space the queue's filesystem must keep:
// a number of bytes, or a share of the filesystem's size. The zero value
// turns the check off.
type SpaceThreshold struct {
	Bytes uint64
	// Percent of the filesystem's size, 0 to 100; used when Bytes is 0.
	Percent float64
}

// Off reports whether the threshold checks nothing.
func (t SpaceThreshold) Off() bool { return t.Bytes == 0 && t.Percent == 0 }

// min returns the threshold in bytes for a filesystem of total bytes.
func (t SpaceThreshold) min(total uint64) uint64 {
	if t.Bytes > 0 {
		return t.Bytes
	}
	return uint64(float64(total) * t.Percent / 100)
}

// String renders the threshold as the configuration writes it.
func (t SpaceThreshold) String() string {
	switch {
	case t.Bytes > 0:
		return FormatBytes(t.Bytes)
	case t.Percent > 0:
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return "0"
}

var sizeUnits = []struct {
	suffix string
	factor uint64
}{
	// Longest suffixes first, so that "GiB" is not read as "B".
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseSpaceThreshold reads a min_free_disk setting: a size such as
// "1GiB", "500MB" or "2147483648" (bytes), a percentage of the
// filesystem's size such as "5%", or "0" to turn the check off.
func ParseSpaceThreshold(s string) (SpaceThreshold, error) {
	v := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	bad := fmt.Errorf("min_free_disk %q: use a size such as \"1GiB\" or \"500MB\", a percentage such as \"5%%\", or \"0\" for no check", s)
	if v == "" {
		return SpaceThreshold{}, bad
	}
	if p, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f >= 100 || math.IsNaN(f) {
			return SpaceThreshold{}, bad
		}
		return SpaceThreshold{Percent: f}, nil
	}
	factor := uint64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, factor = n, u.factor
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f*float64(factor) >= math.MaxUint64/2 {
		return SpaceThreshold{}, bad
	}
	return SpaceThreshold{Bytes: uint64(f * float64(factor))}, nil
}

// FormatBytes renders a size in binary units ("1.5 GiB").
func FormatBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + " " + units[i]
}

// StatFS returns the free space (for unprivileged users) and the size of
// the filesystem holding dir.
func StatFS(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// SpaceGuard tells submission whether the queue's disk still has room: it
// is the back-pressure that keeps a long outage of a next hop, whose mail
// piles up on disk, from filling the disk. The answer is cached for TTL,
// so that a busy endpoint asks the filesystem about once a second.
type SpaceGuard struct {
	dir string
	min SpaceThreshold
	log *slog.Logger
	// Free measures the filesystem (StatFS); tests replace it.
	Free func(dir string) (free, total uint64, err error)
	// TTL is how long an answer is reused (default one second).
	TTL time.Duration
	// Now is the clock of the cache.
	Now func() time.Time

	mu        sync.Mutex
	checkedAt time.Time
	low       bool
	reason    string
}

// NewSpaceGuard watches the filesystem holding dir.
func NewSpaceGuard(dir string, min SpaceThreshold, log *slog.Logger) *SpaceGuard {
	return &SpaceGuard{dir: dir, min: min, log: log, Free: StatFS, TTL: time.Second, Now: time.Now}
}

// Low reports whether the free space is below the threshold, and why in
// plain words. When the filesystem cannot be measured, it answers false
// (and logs): a failing check must not stop mail that the disk may well
// take.
func (g *SpaceGuard) Low() (bool, string) {
	if g == nil || g.min.Off() {
		return false, ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.Now()
	if !g.checkedAt.IsZero() && now.Sub(g.checkedAt) < g.TTL {
		return g.low, g.reason
	}
	g.checkedAt = now
	free, total, err := g.Free(g.dir)
	if err != nil {
		if !g.low && g.reason == "" {
			g.log.Error("cannot measure free disk space; accepting mail regardless", "dir", g.dir, "err", err)
		}
		g.low, g.reason = false, "unknown: "+err.Error()
		return false, ""
	}
	need := g.min.min(total)
	low := free < need
	reason := ""
	if low {
		reason = fmt.Sprintf("%s free on the filesystem of %s, below the minimum of %s ([queue] min_free_disk = %s)",
			FormatBytes(free), g.dir, FormatBytes(need), g.min)
	}
	switch {
	case low && !g.low:
		g.log.Warn("free disk space below the minimum: refusing new mail with 452 4.3.1 until there is room; delivery goes on",
			"dir", g.dir, "free", FormatBytes(free), "min_free_disk", g.min.String(), "min_bytes", need)
	case !low && g.low:
		g.log.Info("free disk space above the minimum again: accepting mail", "dir", g.dir, "free", FormatBytes(free))
	}
	g.low, g.reason = low, reason
	return low, reason
}
