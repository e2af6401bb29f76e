//go:build race

package e2e

// raceEnabled: the tests run under the race detector, so the hve binary is
// built with it too and a data race in the server fails the test.
const raceEnabled = true
