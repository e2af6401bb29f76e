package cli_test

import (
	"testing"

	"hve/internal/directory"
)

// TestLimitCommands: hve tenant set and hve account set change the limits;
// tenant show and account show show them; account create beyond the
// tenant's maximum fails with a clear error.
func TestLimitCommands(t *testing.T) {
	n := startNode(t)
	seedAccount(t, n)
	out := n.ok(t, "tenant", "show")
	contains(t, "tenant show", out, "daily recipient limit", "unlimited", "max HVE accounts", "external sending", "off",
		"outbound smarthost", "price per million", "42")

	out = n.ok(t, "tenant", "set", "--daily-recipient-limit", "100000", "--max-hve-accounts", "1", "--external-sending", "limited",
		"--price-per-million", "37.5")
	contains(t, "tenant set output", out, "100000", "limited (2000 external recipients per account per day, 10 messages per minute)",
		"no outbound smarthost", "37.5")
	n.ok(t, "tenant", "set", "--outbound-smarthost", "smtp.example.net:25")
	var tn directory.Tenant
	n.okJSON(t, &tn, "tenant", "show")
	want := directory.Settings{DailyRecipientLimit: 100000, MaxHVEAccounts: 1, ExternalSending: directory.ExternalLimited,
		OutboundSmarthost: "smtp.example.net:25", PricePerMillion: 37.5}
	if s := tn.Settings; s.DailyRecipientLimit != want.DailyRecipientLimit || s.MaxHVEAccounts != want.MaxHVEAccounts ||
		s.ExternalSending != want.ExternalSending || s.OutboundSmarthost != want.OutboundSmarthost || s.PricePerMillion != want.PricePerMillion {
		t.Errorf("settings %+v, want %+v", s, want)
	}

	// The tenant has its one account: another is refused.
	r := n.run(t, "a-password-2\n", "account", "create", "--name", "Two", "--address", "two@contoso.test", "--password-stdin")
	if r.code == 0 {
		t.Errorf("account create beyond --max-hve-accounts 1 succeeded: %s", r.stdout)
	}
	contains(t, "account create stderr", r.stderr, "already has 1 HVE accounts", "--max-hve-accounts")

	n.ok(t, "tenant", "set", "--daily-recipient-limit", "unlimited", "--max-hve-accounts", "unlimited", "--external-sending", "off",
		"--outbound-smarthost", "none")
	n.okJSON(t, &tn, "tenant", "show")
	if s := tn.Settings; s.DailyRecipientLimit != 0 || s.MaxHVEAccounts != 0 || s.ExternalSending != directory.ExternalOff || s.OutboundSmarthost != "" {
		t.Errorf("after unlimited/off/none: %+v", s)
	}

	out = n.ok(t, "account", "set", "app@contoso.test", "--daily-recipient-limit", "5000", "--warn-at", "80")
	contains(t, "account set output", out, "daily recipient limit", "5000", "warn at", "80% (4000 recipients)")
	var a directory.Account
	n.okJSON(t, &a, "account", "show", "app@contoso.test")
	if a.DailyRecipientLimit != 5000 || a.WarnAt != 80 {
		t.Errorf("account %+v, want limit 5000, warn at 80", a)
	}
	n.ok(t, "account", "set", "app@contoso.test", "--daily-recipient-limit", "none", "--warn-at", "none")
	n.okJSON(t, &a, "account", "show", "app@contoso.test")
	if a.DailyRecipientLimit != 0 || a.WarnAt != 0 {
		t.Errorf("after none: %+v", a)
	}

	n.fail(t, 2, []string{"--daily-recipient-limit must be a positive number or unlimited"}, "tenant", "set", "--daily-recipient-limit", "lots")
	n.fail(t, 2, []string{"off, limited"}, "tenant", "set", "--external-sending", "on")
	n.fail(t, 2, []string{"--outbound-smarthost", "HOST:PORT"}, "tenant", "set", "--outbound-smarthost", "smtp.example.net")
	n.fail(t, 2, []string{"--price-per-million"}, "tenant", "set", "--price-per-million", "-3")
	n.fail(t, 2, []string{"--warn-at must be a percentage"}, "account", "set", "app@contoso.test", "--warn-at", "150")
	n.fail(t, 2, []string{"--daily-recipient-limit must be a positive number or none"}, "account", "set", "app@contoso.test", "--daily-recipient-limit", "0")
}
