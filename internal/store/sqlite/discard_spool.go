//go:build hve_discard_spool

package sqlite

// discardSpool is set by the build tag hve_discard_spool, which only the
// benchmark suite uses: its "nostore" target measures what a node costs
// with everything but the spool's writes (sessions, sign-in, trace events
// made, delivery from memory to the next hop), that is, the ceiling no
// store could lift. Such a binary loses every message it accepts should it
// stop before delivering it, keeps no trace and no queue state; never run
// one for mail.
const discardSpool = true
