// Package cli is the hve command line: `hve serve` runs a node, and every
// other command is a client of a running node's admin API.
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"hve/internal/client"
	"hve/internal/directory"
)

// Env is what a command reads and writes, so tests can run commands
// in-process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// globals are the flags every command accepts, before or after its name.
type globals struct {
	server, token, data, tenant string
	json                        bool
}

func (g *globals) register(fs *flag.FlagSet, env Env) {
	def := func(name, fallback string) string {
		if v := env.Getenv(name); v != "" {
			return v
		}
		return fallback
	}
	fs.StringVar(&g.server, "server", def("HVE_SERVER", "http://127.0.0.1:8025"), "admin API `URL` (default $HVE_SERVER)")
	fs.StringVar(&g.token, "token", env.Getenv("HVE_TOKEN"), "admin API bearer `token` (default $HVE_TOKEN, else <data>/admin.token)")
	fs.StringVar(&g.data, "data", "./hve-data", "data `directory`")
	fs.StringVar(&g.tenant, "tenant", "", "tenant `name` (default: the only tenant)")
	fs.BoolVar(&g.json, "json", false, "print JSON instead of a table")
}

// command is one leaf of the command tree.
type command struct {
	path  string // e.g. "account create"
	args  string // positional arguments, for usage
	help  string
	flags func(fs *flag.FlagSet) // registers the command's own flags
	run   func(c *ctx) error
}

// ctx is what a running command has at hand.
type ctx struct {
	context.Context
	env  Env
	g    *globals
	fs   *flag.FlagSet
	args []string // positional arguments
	api  *client.Client
}

// Run runs the command line args (without the program name) and returns
// the process exit code.
func Run(args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	cmd, rest := find(args)
	if cmd == nil {
		if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			usage(env.Stdout, args) // asked for: not an error
			return 0
		}
		usage(env.Stderr, args)
		return 2
	}
	g := &globals{}
	fs := flag.NewFlagSet("hve "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	g.register(fs, env)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: hve %s [flags] %s\n\n%s\n\nflags:\n", cmd.path, cmd.args, cmd.help)
		fs.PrintDefaults()
	}
	positional, err := parseInterleaved(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c := &ctx{Context: context.Background(), env: env, g: g, fs: fs, args: positional}
	if err := cmd.run(c); err != nil {
		fmt.Fprintf(env.Stderr, "hve %s: %v\n", cmd.path, err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// find picks the longest command path that args start with; global flags
// may come before the command name.
func find(args []string) (*command, []string) {
	var words, flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			// a global flag's value follows unless given as --flag=value
			if !strings.Contains(a, "=") && strings.TrimLeft(a, "-") != "json" && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
			continue
		}
		words = append(words, a)
		if c := lookup(words); c != nil && !hasLonger(words) {
			return c, append(flags, args[i+1:]...)
		}
	}
	return nil, nil
}

func lookup(words []string) *command {
	p := strings.Join(words, " ")
	for i := range commands {
		if commands[i].path == p {
			return &commands[i]
		}
	}
	return nil
}

func hasLonger(words []string) bool {
	p := strings.Join(words, " ") + " "
	for _, c := range commands {
		if strings.HasPrefix(c.path, p) {
			return true
		}
	}
	return false
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usage(w io.Writer, args []string) {
	if len(args) > 0 && args[0] != "help" && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprintf(w, "hve: unknown command %q\n\n", strings.Join(args, " "))
	}
	fmt.Fprintln(w, "usage: hve COMMAND [flags] [arguments]\n\ncommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.path, c.args, c.help)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nglobal flags (every command): --server URL, --token T, --data DIR, --tenant NAME, --json\nhve COMMAND -h shows a command's flags.")
}

// usageError marks errors in how a command was called (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func (c *ctx) wantArgs(n int, names string) error {
	if len(c.args) != n {
		return usageError{fmt.Sprintf("expected %s, got %d argument(s); see hve %s -h", names, len(c.args), strings.TrimPrefix(c.fs.Name(), "hve "))}
	}
	return nil
}

// client connects to the admin API with the token from --token, $HVE_TOKEN
// or <data>/admin.token.
func (c *ctx) client() (*client.Client, error) {
	if c.api != nil {
		return c.api, nil
	}
	token := c.g.token
	if token == "" {
		file := filepath.Join(c.g.data, "admin.token")
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("no admin token: pass --token, set HVE_TOKEN, or run where %s is readable (hve serve writes it on first start): %w", file, err)
		}
		token = strings.TrimSpace(string(b))
	}
	c.api = client.New(c.g.server, token)
	return c.api, nil
}

// tenantPath returns the API path prefix of the chosen tenant: --tenant, or
// the only tenant there is.
func (c *ctx) tenantPath() (string, error) {
	api, err := c.client()
	if err != nil {
		return "", err
	}
	name := c.g.tenant
	if name == "" {
		var tenants []directory.Tenant
		if err := api.Do(c, "GET", "/api/v1/tenants", nil, &tenants); err != nil {
			return "", err
		}
		if len(tenants) != 1 {
			names := make([]string, len(tenants))
			for i, t := range tenants {
				names[i] = t.Name
			}
			return "", usageError{fmt.Sprintf("this server has %d tenants (%s); choose one with --tenant", len(tenants), strings.Join(names, ", "))}
		}
		name = tenants[0].Name
	}
	return "/api/v1/tenants/" + url.PathEscape(name), nil
}

// call sends a request to a path under the tenant.
func (c *ctx) call(method, path string, body, out any) error {
	base, err := c.tenantPath()
	if err != nil {
		return err
	}
	return c.api.Do(c, method, base+path, body, out)
}

// show prints v as JSON with --json, else as the table that table() makes.
func (c *ctx) show(v any, header []string, rows func() [][]string) error {
	if c.g.json {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows() {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// readPassword reads one line from standard input (for --password-stdin).
func (c *ctx) readPassword() (string, error) {
	line, err := bufio.NewReader(c.env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", usageError{"--password-stdin: standard input is empty"}
	}
	return pw, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
