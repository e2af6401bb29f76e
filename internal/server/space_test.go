package server_test

import (
	"strings"
	"testing"

	"hve/internal/config"
)

// TestStorageLowRefusesMail: with more free space required than the data
// directory's filesystem has ([queue] min_free_disk, measured for real),
// the endpoints answer MAIL with 452 4.3.1 and a plain reason, and queue
// nothing. (smtpd.TestStorageLow covers DATA and recovery with an
// injected free-space function.)
func TestStorageLowRefusesMail(t *testing.T) {
	t.Parallel()
	n := startNodeWith(t, func(c *config.Config) { c.Queue.MinFreeDisk = "1000000TiB" })
	c := n.signIn()
	code, text := c.cmd("MAIL FROM:<" + appAddr + ">")
	if code != 452 || !strings.HasPrefix(text, "4.3.1 ") {
		t.Fatalf("MAIL with the disk below the minimum: %d %s, want 452 4.3.1", code, text)
	}
	for _, w := range []string{"Insufficient system storage", "free disk space", "below its configured minimum", "try again later"} {
		if !strings.Contains(text, w) {
			t.Errorf("reply %q lacks %q", text, w)
		}
	}
	if depth, err := n.srv.Store.QueueDepth(t.Context()); err != nil || depth != 0 {
		t.Errorf("queue depth = %d, %v; want nothing queued", depth, err)
	}
	c2 := n.signInClient()
	if code, text := c2.cmd("MAIL FROM:<" + sharedAddr + ">"); code != 452 {
		t.Errorf("client endpoint MAIL: %d %s, want 452 4.3.1", code, text)
	}
}
