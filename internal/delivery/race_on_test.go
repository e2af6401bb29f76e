//go:build race

package delivery_test

// The race detector makes the embedded store (SQLite compiled to Go) many
// times slower: the outage test queues fewer, larger messages, the same
// 40 MB of mail in all.
const (
	outageMessages = 400
	outageBodySize = 100 << 10
)
