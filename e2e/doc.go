// Package e2e holds end-to-end tests of hve: they build the hve binary, run
// `hve serve` as a separate process on loopback ports, seed it through the
// CLI, and talk to it with real SMTP clients (swaks, curl, Python's
// smtplib, Go's net/smtp). The crash test kills the server with SIGKILL
// while clients are sending and checks that nothing acknowledged is lost and
// nothing is delivered twice.
//
// Missing client programs make the tests fail when CI is set, and skip them
// otherwise (naming the Debian package to install).
package e2e
