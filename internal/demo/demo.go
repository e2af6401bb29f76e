// Package demo fills an empty data directory with a small organisation so
// that a newcomer can send a first message within a minute.
package demo

import (
	"context"
	"fmt"
	"io"
	"net"

	"hve/internal/directory"
	"hve/internal/password"
	"hve/internal/store"
)

// Domain and Account are the demo organisation's domain and HVE account.
const (
	Domain  = "contoso.test"
	Account = "hr-notify@contoso.test"
	Group   = "all-staff@contoso.test"
)

// Seed creates the demo organisation in the default tenant if the tenant
// has no domain yet. It returns the account's generated password, or ""
// when the tenant was not empty (nothing was changed).
func Seed(ctx context.Context, st store.Store) (string, error) {
	t, err := st.TenantByName(ctx, directory.DefaultTenant)
	if err != nil {
		return "", err
	}
	domains, err := st.Domains(ctx, t.ID)
	if err != nil || len(domains) > 0 {
		return "", err
	}
	if _, err := st.AddDomain(ctx, directory.Domain{TenantID: t.ID, Name: Domain, Type: directory.Authoritative}); err != nil {
		return "", err
	}
	people := []struct{ name, display string }{
		{"alice", "Alice Adams"}, {"bob", "Bob Brown"}, {"carol", "Carol Clark"}, {"dave", "Dave Davis"},
	}
	for _, p := range people {
		_, err := st.CreateMailbox(ctx, directory.Mailbox{TenantID: t.ID, Name: p.name, DisplayName: p.display, Address: p.name + "@" + Domain})
		if err != nil {
			return "", err
		}
	}
	team, err := st.CreateGroup(ctx, directory.Group{TenantID: t.ID, Name: "HR team", Address: "hr-team@" + Domain})
	if err != nil {
		return "", err
	}
	all, err := st.CreateGroup(ctx, directory.Group{TenantID: t.ID, Name: "All staff", Address: Group})
	if err != nil {
		return "", err
	}
	for _, m := range []struct {
		group int64
		addr  string
	}{{team.ID, "alice@" + Domain}, {team.ID, "bob@" + Domain}, {all.ID, "hr-team@" + Domain}, {all.ID, "carol@" + Domain}, {all.ID, "dave@" + Domain}} {
		if err := st.AddGroupMember(ctx, t.ID, m.group, m.addr); err != nil {
			return "", err
		}
	}
	pw := password.Generate(20)
	hash, err := password.Hash(pw)
	if err != nil {
		return "", err
	}
	_, err = st.CreateAccount(ctx, directory.Account{TenantID: t.ID, Name: "HR notifications", DisplayName: "HR Notifications",
		Address: Account, PasswordHash: hash, Enabled: true, ReplyTo: "hr-team@" + Domain})
	if err != nil {
		return "", err
	}
	return pw, nil
}

// PrintHowTo tells the newcomer how to send a test message and where to
// look. pw is empty when the demo data existed before this start. client is
// the CLI invocation that reaches this server (with --server and --data
// where they differ from the defaults).
func PrintHowTo(w io.Writer, smtpAddr, pw, client string) {
	shownPW := pw
	if shownPW == "" {
		shownPW = "PASSWORD"
	}
	fmt.Fprintf(w, `
hve demo is running.

  SMTP endpoint:   %[1]s (STARTTLS, self-signed certificate)
  HVE account:     %[2]s
  Password:        %[3]s
  Mailboxes:       alice@%[4]s bob@%[4]s carol@%[4]s dave@%[4]s
  Groups:          %[5]s (carol, dave and the nested hr-team@%[4]s: alice, bob)
`, smtpAddr, Account, shownPW, Domain, Group)
	if pw == "" {
		fmt.Fprintf(w, "  The password was printed at the first start; set a new one with:\n\n  echo NEWPASSWORD | %s account set %s --password-stdin\n", client, Account)
	}
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		host, port = smtpAddr, "587"
	}
	fmt.Fprintf(w, `
Send a test message with swaks:

  swaks --server %[1]s --tls --auth LOGIN --auth-user %[2]s --auth-password '%[3]s' \
        --from %[2]s --to %[4]s --header 'Subject: Hello from hve'

or with Python:

  python3 -c "import smtplib; s = smtplib.SMTP('%[5]s', %[6]s); s.starttls(); s.login('%[2]s', '%[3]s'); s.sendmail('%[2]s', ['%[4]s'], 'From: %[2]s\r\nSubject: Hello from hve\r\n\r\nHi all\r\n'); s.quit()"

Then look (in another terminal, from this directory):

  %[8]s mailbox messages alice@%[7]s
  %[8]s trace --sender %[2]s
`, smtpAddr, Account, shownPW, Group, host, port, Domain, client)
}
