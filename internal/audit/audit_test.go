package audit

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	in := `{"name":"app","password":"hunter22","Client_Secret":"s3cr3t","nested":{"api_token":"hvea_x","list":[{"password_hash":"$argon2id$"}]},
		"has_password":true,"secret_expires":"2y","empty_password":"","n":12345678901234567890}`
	out := string(Redact([]byte(in)))
	for _, secret := range []string{"hunter22", "s3cr3t", "hvea_x", "argon2id"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redact kept %q: %s", secret, out)
		}
	}
	for _, kept := range []string{`"name":"app"`, `"empty_password":""`, `"has_password":true`, `"n":12345678901234567890`} {
		if !strings.Contains(out, kept) {
			t.Errorf("Redact lost %s: %s", kept, out)
		}
	}
	if got := string(Redact([]byte("password=hunter22"))); strings.Contains(got, "hunter22") {
		t.Errorf("Redact of non-JSON = %s", got)
	}
	if Redact(nil) != nil || Redact([]byte("  ")) != nil {
		t.Error("Redact of nothing is not nil")
	}
}
