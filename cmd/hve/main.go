// Command hve is a self-hosted High Volume Email service: an SMTP submission
// endpoint for applications that send to people inside the organisation.
//
// `hve serve` runs the service; every other command is a client of a running
// server's admin API. Run `hve help` for the list.
package main

import (
	"os"

	"hve/internal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
