package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerify(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "", "ünïcödé pässwörd", strings.Repeat("x", 1000)} {
		h, err := Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("Hash(%q) = %q, want an argon2id PHC string with the OWASP parameters", pw, h)
		}
		if strings.Contains(h, pw) && pw != "" {
			t.Errorf("Hash(%q) contains the password", pw)
		}
		if err := Verify(h, pw); err != nil {
			t.Errorf("Verify(Hash(%q), %q) = %v, want nil", pw, pw, err)
		}
		for _, wrong := range []string{pw + "x", strings.ToUpper(pw) + "X", "wrong"} {
			if err := Verify(h, wrong); !errors.Is(err, ErrMismatch) {
				t.Errorf("Verify(Hash(%q), %q) = %v, want ErrMismatch", pw, wrong, err)
			}
		}
	}
}

func TestHashesOfOnePasswordDiffer(t *testing.T) {
	a, err := Hash("same")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Hash("same")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two hashes of one password are equal (%s): the salt is not random", a)
	}
	saltOf := func(h string) string { return strings.Split(h, "$")[4] }
	if saltOf(a) == saltOf(b) {
		t.Errorf("two hashes share the salt %s", saltOf(a))
	}
}

func TestVerifyMalformedHash(t *testing.T) {
	good, err := Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=...,t=...,p=..., salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "pw"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", with(1, "argon2i")},
		{"too few fields", strings.Join(parts[:5], "$")},
		{"too many fields", good + "$extra"},
		{"old version", with(2, "v=16")},
		{"no version", with(2, "19")},
		{"bad parameters", with(3, "m=lots,t=2,p=1")},
		{"zero passes", with(3, "m=19456,t=0,p=1")},
		{"zero lanes", with(3, "m=19456,t=2,p=0")},
		{"salt not base64", with(4, "!!!")},
		{"key not base64", with(5, "!!!")},
		{"empty key", with(5, "")},
		{"empty salt", with(4, "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Verify(%q) panicked: %v", tc.hash, r)
					}
				}()
				err = Verify(tc.hash, "pw")
			}()
			if err == nil || errors.Is(err, ErrMismatch) {
				t.Errorf("Verify(%q) = %v, want an error saying the hash is malformed", tc.hash, err)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	for _, n := range []int{0, 1, 24, 100} {
		pw := Generate(n)
		if len(pw) != n {
			t.Errorf("Generate(%d) has %d characters", n, len(pw))
		}
		for _, r := range pw {
			if !strings.ContainsRune(alphabet, r) {
				t.Errorf("Generate(%d) = %q holds %q, outside the alphabet", n, pw, r)
			}
		}
	}
	for _, lookalike := range "0O1lI" {
		if strings.ContainsRune(alphabet, lookalike) {
			t.Fatalf("test alphabet holds look-alike %q", lookalike)
		}
	}
	// Random: many passwords are all different and use most of the alphabet.
	seen := map[string]bool{}
	used := map[rune]bool{}
	for range 1000 {
		pw := Generate(24)
		if seen[pw] {
			t.Fatalf("Generate(24) repeated %q", pw)
		}
		seen[pw] = true
		for _, r := range pw {
			used[r] = true
		}
	}
	if len(used) != len(alphabet) {
		t.Errorf("24000 generated characters use %d of the %d characters of the alphabet", len(used), len(alphabet))
	}
}

func TestVerifyRefusesExcessiveParameters(t *testing.T) {
	for _, params := range []string{"m=2097152,t=2,p=1", "m=19456,t=1000,p=1"} {
		hash := "$argon2id$v=19$" + params + "$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
		if err := Verify(hash, "x"); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("Verify with %s = %v, want an error about the limits", params, err)
		}
	}
}
