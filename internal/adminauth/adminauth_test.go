package adminauth

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"
	"testing"
	"time"
)

// TestTOTPVectors checks HOTP/TOTP against the test vectors of RFC 6238
// appendix B (8 digits; the seeds are the ASCII strings the RFC gives).
func TestTOTPVectors(t *testing.T) {
	seeds := map[string][]byte{
		"SHA1":   []byte("12345678901234567890"),
		"SHA256": []byte("12345678901234567890123456789012"),
		"SHA512": []byte("1234567890123456789012345678901234567890123456789012345678901234"),
	}
	hashes := map[string]func() hash.Hash{"SHA1": sha1.New, "SHA256": sha256.New, "SHA512": sha512.New}
	vectors := []struct {
		unix int64
		alg  string
		want string
	}{
		{59, "SHA1", "94287082"}, {59, "SHA256", "46119246"}, {59, "SHA512", "90693936"},
		{1111111109, "SHA1", "07081804"}, {1111111109, "SHA256", "68084774"}, {1111111109, "SHA512", "25091201"},
		{1111111111, "SHA1", "14050471"}, {1111111111, "SHA256", "67062674"}, {1111111111, "SHA512", "99943326"},
		{1234567890, "SHA1", "89005924"}, {1234567890, "SHA256", "91819424"}, {1234567890, "SHA512", "93441116"},
		{2000000000, "SHA1", "69279037"}, {2000000000, "SHA256", "90698825"}, {2000000000, "SHA512", "38618901"},
		{20000000000, "SHA1", "65353130"}, {20000000000, "SHA256", "77737706"}, {20000000000, "SHA512", "47863826"},
	}
	for _, v := range vectors {
		step := TOTPStepAt(time.Unix(v.unix, 0))
		if got := HOTP(seeds[v.alg], uint64(step), 8, hashes[v.alg]); got != v.want {
			t.Errorf("TOTP %s at %d = %s, want %s", v.alg, v.unix, got, v.want)
		}
	}
	// The 6-digit code is the last six digits of the 8-digit one.
	if got := TOTPAt(seeds["SHA1"], time.Unix(59, 0)); got != "287082" {
		t.Errorf("TOTPAt = %s, want 287082", got)
	}
}

func TestVerifyTOTP(t *testing.T) {
	key := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	code := TOTPAt(key, now)
	step, ok := VerifyTOTP(key, code, now, 0)
	if !ok || step != TOTPStepAt(now) {
		t.Fatalf("VerifyTOTP(current code) = %d, %v", step, ok)
	}
	if _, ok := VerifyTOTP(key, code, now, step); ok {
		t.Error("a code was accepted twice")
	}
	if _, ok := VerifyTOTP(key, TOTPAt(key, now.Add(-TOTPStep)), now, 0); !ok {
		t.Error("the previous step's code was refused")
	}
	if _, ok := VerifyTOTP(key, TOTPAt(key, now.Add(-3*TOTPStep)), now, 0); ok {
		t.Error("a code three steps old was accepted")
	}
	for _, bad := range []string{"", "12345", "abcdef", "1234567"} {
		if _, ok := VerifyTOTP(key, bad, now, 0); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	uri := TOTPURI("hve", "ana", key)
	if !strings.HasPrefix(uri, "otpauth://totp/hve:ana?") || !strings.Contains(uri, "secret="+TOTPBase32(key)) {
		t.Errorf("TOTPURI = %s", uri)
	}
}

func TestAuthorize(t *testing.T) {
	global := Principal{Name: "g", Role: GlobalAdmin}
	tadmin := Principal{Name: "t", Role: TenantAdmin, Tenant: "contoso"}
	reader := Principal{Name: "r", Role: Reader}
	scopedReader := Principal{Name: "sr", Role: Reader, Tenant: "contoso"}
	tracer := Principal{Name: "tr", Role: TraceReader, Tenant: "contoso"}
	unscopedTenantAdmin := Principal{Name: "x", Role: TenantAdmin}
	cases := []struct {
		p       Principal
		pattern string
		tenant  string
		want    Decision
	}{
		{global, "DELETE /api/v1/tenants/{tenant}/accounts/{address}", "fabrikam", Allow},
		{global, "POST /api/v1/oauth/rotate-key", "", Allow},
		{tadmin, "DELETE /api/v1/tenants/{tenant}/accounts/{address}", "contoso", Allow},
		{tadmin, "DELETE /api/v1/tenants/{tenant}/accounts/{address}", "CONTOSO", Hidden},
		{tadmin, "GET /api/v1/tenants/{tenant}/accounts", "fabrikam", Hidden},
		{tadmin, "POST /api/v1/oauth/rotate-key", "", Forbidden},
		{tadmin, "POST /api/v1/tenants", "", Forbidden},
		{tadmin, "GET /api/v1/tenants", "", Allow},
		{tadmin, "GET /api/v1/audit", "", Forbidden},
		{tadmin, "POST /api/v1/me/tokens", "", Allow},
		{unscopedTenantAdmin, "GET /api/v1/tenants/{tenant}", "contoso", Forbidden},
		{reader, "GET /api/v1/tenants/{tenant}/accounts", "fabrikam", Allow},
		{reader, "GET /api/v1/audit", "", Allow},
		{reader, "PATCH /api/v1/tenants/{tenant}/accounts/{address}", "fabrikam", Forbidden},
		{reader, "POST /api/v1/me/tokens", "", Forbidden},
		{reader, "GET /api/v1/me", "", Allow},
		{scopedReader, "GET /api/v1/tenants/{tenant}/accounts", "fabrikam", Hidden},
		{scopedReader, "GET /api/v1/tenants/{tenant}/accounts", "contoso", Allow},
		{tracer, "GET /api/v1/tenants/{tenant}/trace", "contoso", Allow},
		{tracer, "GET /api/v1/tenants/{tenant}/reports/usage", "contoso", Allow},
		{tracer, "GET /api/v1/tenants/{tenant}/accounts", "contoso", Forbidden},
		{tracer, "GET /api/v1/tenants/{tenant}/trace", "fabrikam", Hidden},
		{tracer, "GET /api/v1/tenants", "", Allow},
		{tracer, "POST /api/v1/tenants/{tenant}/reports", "contoso", Forbidden},
	}
	for _, c := range cases {
		if got := Authorize(c.p, c.pattern, c.tenant); got != c.want {
			t.Errorf("Authorize(%s %s, %q, %q) = %v, want %v", c.p.Role, c.p.Tenant, c.pattern, c.tenant, got, c.want)
		}
	}
}

func TestTokens(t *testing.T) {
	tok, hash, hint, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "hvea_") || len(tok) < 40 || !strings.HasPrefix(tok, hint) {
		t.Errorf("token %q hint %q", tok, hint)
	}
	if HashToken(tok) != hash || HashToken(" "+tok+"\n") != hash {
		t.Error("HashToken does not match the hash NewToken returned")
	}
	if _, err := ParseRole("Global-Admin"); err != nil {
		t.Error(err)
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error("ParseRole(root) succeeded")
	}
}
