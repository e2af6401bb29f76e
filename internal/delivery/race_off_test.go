//go:build !race

package delivery_test

// The size of the outage test's queue: 40 MB of mail in all, too much to
// hide in the heap bound.
const (
	outageMessages = 2000
	outageBodySize = 20 << 10
)
