package directory

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestNormalizeAddress(t *testing.T) {
	accept := []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"Alice@Example.COM", "alice@example.com"},
		{"  bob@example.com\t", "bob@example.com"},
		{"first.last+tag@mail.example.com", "first.last+tag@mail.example.com"},
		{"o'brien@example.com", "o'brien@example.com"},
		{"x@localhost", "x@localhost"},
	}
	for _, tc := range accept {
		got, err := NormalizeAddress(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	reject := []string{
		"",
		"   ",
		"alice",
		"@example.com",
		"alice@",
		"Alice <alice@example.com>",
		"<alice@example.com>",
		`"Alice" <alice@example.com>`,
		`"a b"@example.com`,
		"a b@example.com",
		"a@b@example.com",
		"alice@example.com, bob@example.com",
		"alice@example..com",
		"alice.@example.com",
		"(comment)alice@example.com",
		"alice@example.com\r\nBcc: x@example.com",
		"\u0095@example.com",      // C1 control
		"a\u0085b@example.com",    // NEL, Unicode white space
		"a\u00a0b@example.com",    // no-break space
		"alice@exa\u2028mple.com", // line separator
	}
	for _, in := range reject {
		got, err := NormalizeAddress(in)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want an error wrapping ErrInvalidAddress", in, got, err)
		}
	}
}

func FuzzNormalizeAddress(f *testing.F) {
	for _, seed := range []string{
		"alice@example.com", "Alice@Example.COM", " a@b ", "Alice <a@b.c>", `"a b"@c.d`, "a@b@c", "ä@b.com",
		"İ@b.com", "K@b.com", "a@[1.2.3.4]", "a\x00@b.com", "\u0095@0", "", "@", "a@", "@b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeAddress(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("NormalizeAddress(%q) error %v does not wrap ErrInvalidAddress", in, err)
			}
			return
		}
		if got != strings.ToLower(got) {
			t.Errorf("NormalizeAddress(%q) = %q is not lower case", in, got)
		}
		at := strings.LastIndexByte(got, '@')
		if at <= 0 || at == len(got)-1 {
			t.Errorf("NormalizeAddress(%q) = %q is not local@domain", in, got)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			t.Errorf("NormalizeAddress(%q) = %q holds white space or control characters", in, got)
		}
		if DomainOf(got) != got[at+1:] {
			t.Errorf("DomainOf(%q) = %q", got, DomainOf(got))
		}
		// Stored addresses are normalized again on lookup: it must be a
		// fixed point.
		again, err := NormalizeAddress(got)
		if err != nil || again != got {
			t.Errorf("NormalizeAddress(%q) = %q, but normalizing that gives %q, %v", in, got, again, err)
		}
	})
}

func TestNormalizeDomain(t *testing.T) {
	accept := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"Example.COM", "example.com"},
		{"example.com.", "example.com"},
		{" mail.example.com ", "mail.example.com"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"a-b.c0", "a-b.c0"},
		{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
	}
	for _, tc := range accept {
		got, err := NormalizeDomain(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	reject := []string{
		"", ".", "localhost", "example..com", ".example.com", "-a.example.com", "a-.example.com",
		"a_b.example.com", "exa mple.com", "bücher.example", "user@example.com",
		strings.Repeat("a", 64) + ".com",
		strings.Repeat("abcdefghi.", 25) + "com1", // 254 characters
	}
	for _, in := range reject {
		if got, err := NormalizeDomain(in); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseDomainType(t *testing.T) {
	tests := []struct {
		in      string
		want    DomainType
		wantErr bool
	}{
		{"", Authoritative, false},
		{"authoritative", Authoritative, false},
		{"internal-relay", InternalRelay, false},
		{"external-relay", "", true},
		{"relay", "", true},
	}
	for _, tc := range tests {
		got, err := ParseDomainType(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseDomainType(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestAccountSendsAs(t *testing.T) {
	a := Account{Address: "hr@example.com", Aliases: []string{"jobs@example.com", "people@example.org"}}
	tests := []struct {
		addr string
		want bool
	}{
		{"hr@example.com", true},
		{"HR@Example.com", true},
		{"jobs@example.com", true},
		{"People@EXAMPLE.org", true},
		{"ceo@example.com", false},
		{"hr@example.org", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := a.SendsAs(tc.addr); got != tc.want {
			t.Errorf("SendsAs(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if (&Account{Address: "solo@example.com"}).SendsAs("alias@example.com") {
		t.Error("an account without aliases sends as another address")
	}
}

func TestDomainOf(t *testing.T) {
	for in, want := range map[string]string{"a@example.com": "example.com", "a@b@c.example": "c.example"} {
		if got := DomainOf(in); got != want {
			t.Errorf("DomainOf(%q) = %q, want %q", in, got, want)
		}
	}
}
