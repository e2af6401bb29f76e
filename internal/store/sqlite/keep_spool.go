//go:build !hve_discard_spool

package sqlite

// discardSpool is false in every real build (see discard_spool.go).
const discardSpool = false
