package smtpd

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"hve/internal/reply"
)

func TestParseXOAUTH2(t *testing.T) {
	for _, tc := range []struct {
		name, msg   string
		user, token string
		defect      *reply.Reply
	}{
		{"complete", "user=app@contoso.test\x01auth=Bearer tok.en\x01\x01", "app@contoso.test", "tok.en", nil},
		{"without the closing ^A^A", "user=app@contoso.test\x01auth=Bearer tok", "app@contoso.test", "tok", nil},
		{"keys in any case, scheme in any case", "USER=app@contoso.test\x01Auth=bearer tok\x01\x01", "app@contoso.test", "tok", nil},
		{"extra spaces around the token", "user=app@contoso.test\x01auth=Bearer   tok  \x01\x01", "app@contoso.test", "tok", nil},
		{"unknown fields ignored", "x=1\x01user=a@b.test\x01host=h\x01auth=Bearer t\x01\x01", "a@b.test", "t", nil},
		{"first user wins", "user=a@b.test\x01user=c@d.test\x01auth=Bearer t", "a@b.test", "t", nil},
		{"empty", "", "", "", reply.OAuthNoUser},
		{"no user field", "auth=Bearer tok\x01\x01", "", "", reply.OAuthNoUser},
		{"empty user", "user=\x01auth=Bearer tok\x01\x01", "", "", reply.OAuthNoUser},
		{"blank user", "user=  \x01auth=Bearer tok\x01\x01", "", "", reply.OAuthNoUser},
		{"no auth field", "user=app@contoso.test\x01\x01", "", "", reply.OAuthNoBearer},
		{"another scheme", "user=app@contoso.test\x01auth=Basic dXNlcjpwdw==\x01\x01", "", "", reply.OAuthNoBearer},
		{"Bearer glued to the token", "user=app@contoso.test\x01auth=Bearertok\x01\x01", "", "", reply.OAuthNoBearer},
		{"no token", "user=app@contoso.test\x01auth=Bearer\x01\x01", "", "", reply.OAuthNoToken},
		{"blank token", "user=app@contoso.test\x01auth=Bearer    \x01\x01", "", "", reply.OAuthNoToken},
		{"password instead", "user=app@contoso.test\x00app-password", "", "", reply.OAuthNoBearer},
	} {
		user, token, defect := parseXOAUTH2([]byte(tc.msg))
		if user != tc.user || token != tc.token || defect != tc.defect {
			t.Errorf("%s: got %q, %q, %v; want %q, %q, %v", tc.name, user, token, name(defect), tc.user, tc.token, name(tc.defect))
		}
	}
}

func TestParseOAUTHBEARER(t *testing.T) {
	for _, tc := range []struct {
		name, msg   string
		user, token string
		defect      *reply.Reply
	}{
		{"RFC 7628 example", "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01",
			"user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", nil},
		{"y flag", "y,a=app@contoso.test,\x01auth=Bearer t\x01\x01", "app@contoso.test", "t", nil},
		{"escaped saslname", "n,a=we=2Cird=3Dname@contoso.test,\x01auth=Bearer t\x01\x01", "we,ird=name@contoso.test", "t", nil},
		{"lower-case scheme", "n,a=app@contoso.test,\x01auth=bearer t\x01\x01", "app@contoso.test", "t", nil},
		{"no a=", "n,,\x01auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"empty a=", "n,a=,\x01auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"bad escape", "n,a=x=2Xy@contoso.test,\x01auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"bad cbflag", "x,a=app@contoso.test,\x01auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"no GS2 header", "auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"XOAUTH2 data", "user=app@contoso.test\x01auth=Bearer t\x01\x01", "", "", reply.OAuthNoUser},
		{"empty", "", "", "", reply.OAuthNoUser},
		{"no auth", "n,a=app@contoso.test,\x01host=h\x01\x01", "", "", reply.OAuthNoBearer},
		{"header only", "n,a=app@contoso.test,", "", "", reply.OAuthNoBearer},
		{"upper-case key is not auth", "n,a=app@contoso.test,\x01AUTH=Bearer t\x01\x01", "", "", reply.OAuthNoBearer},
		{"no token", "n,a=app@contoso.test,\x01auth=Bearer \x01\x01", "", "", reply.OAuthNoToken},
	} {
		user, token, defect := parseOAUTHBEARER([]byte(tc.msg))
		if user != tc.user || token != tc.token || defect != tc.defect {
			t.Errorf("%s: got %q, %q, %v; want %q, %q, %v", tc.name, user, token, name(defect), tc.user, tc.token, name(tc.defect))
		}
	}
}

func name(r *reply.Reply) string {
	if r == nil {
		return "<nil>"
	}
	return r.Name
}

// TestOAuthServer: the exchange with and without an initial response, and
// a defect answered with the mechanism's name.
func TestOAuthServer(t *testing.T) {
	var gotUser, gotToken string
	check := func(user, token string) error {
		gotUser, gotToken = user, token
		if token == "good" {
			return nil
		}
		return reply.AuthFailed.Err()
	}
	msg := []byte("user=app@contoso.test\x01auth=Bearer good\x01\x01")

	// Initial response.
	s := newOAuthServer(mechXOAUTH2, parseXOAUTH2, check)
	if ch, done, err := s.Next(msg); len(ch) != 0 || !done || err != nil {
		t.Errorf("initial response: %q, %v, %v", ch, done, err)
	}
	if gotUser != "app@contoso.test" || gotToken != "good" {
		t.Errorf("checked %q, %q", gotUser, gotToken)
	}

	// Empty challenge first ("AUTH XOAUTH2", "334 ", data).
	s = newOAuthServer(mechXOAUTH2, parseXOAUTH2, check)
	if ch, done, err := s.Next(nil); len(ch) != 0 || done || err != nil {
		t.Errorf("no initial response: %q, %v, %v; want an empty challenge", ch, done, err)
	}
	if _, done, err := s.Next(msg); !done || err != nil {
		t.Errorf("after the challenge: %v, %v", done, err)
	}

	// An empty answer to the challenge is a defect, not another challenge.
	s = newOAuthServer(mechOAUTHBEARER, parseOAUTHBEARER, check)
	s.Next(nil)
	_, done, err := s.Next([]byte{})
	var se *smtp.SMTPError
	if !done || !errors.As(err, &se) || se.Code != 501 || se.EnhancedCode != (smtp.EnhancedCode{5, 5, 121}) ||
		!strings.Contains(se.Message, "OAUTHBEARER") {
		t.Errorf("empty answer: %v, %v; want 501 5.5.121 naming OAUTHBEARER", done, err)
	}

	// A refused token is the checker's reply.
	s = newOAuthServer(mechXOAUTH2, parseXOAUTH2, check)
	if _, _, err := s.Next([]byte("user=a@b.test\x01auth=Bearer bad\x01\x01")); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("bad token: %v", err)
	}
}

// checkParsed holds for whatever a parser accepts: a user and a token,
// neither empty nor holding the field separator, the token without
// surrounding spaces.
func checkParsed(t *testing.T, user, token string, defect *reply.Reply) {
	t.Helper()
	if defect != nil {
		if user != "" || token != "" {
			t.Fatalf("defect %s with user %q, token %q", defect.Name, user, token)
		}
		switch defect {
		case reply.OAuthNoUser, reply.OAuthNoBearer, reply.OAuthNoToken:
		default:
			t.Fatalf("unexpected defect %s", defect.Name)
		}
		return
	}
	if user == "" || token == "" || strings.Contains(user+token, "\x01") || strings.TrimSpace(token) != token {
		t.Fatalf("accepted user %q, token %q", user, token)
	}
}

func FuzzParseXOAUTH2(f *testing.F) {
	for _, seed := range []string{
		"user=app@contoso.test\x01auth=Bearer tok\x01\x01",
		"user=\x01auth=Bearer\x01\x01",
		"auth=Basic x",
		"",
		"\x01\x01\x01=",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		user, token, defect := parseXOAUTH2(msg)
		checkParsed(t, user, token, defect)
	})
}

func FuzzParseOAUTHBEARER(f *testing.F) {
	for _, seed := range []string{
		"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer tok\x01\x01",
		"n,a=we=2Cird@x.test,\x01auth=Bearer t\x01\x01",
		"n,,\x01auth=Bearer t\x01\x01",
		"p=tls-unique,a=x@y.test,\x01auth=Bearer t",
		"",
		"=",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		user, token, defect := parseOAUTHBEARER(msg)
		checkParsed(t, user, token, defect)
	})
}

// FuzzOAuthRoundTrip: what a client builds from a user and a token is read
// back as that user and token, by both parsers.
func FuzzOAuthRoundTrip(f *testing.F) {
	f.Add("app@contoso.test", "eyJhbGciOiJSUzI1NiJ9.e30.sig")
	f.Add("we,ird=name@x.test", "t")
	f.Fuzz(func(t *testing.T, user, token string) {
		if strings.ContainsAny(user, "\x01") || strings.ContainsAny(token, "\x01 ") ||
			strings.TrimSpace(user) != user || strings.TrimSpace(token) != token || user == "" || token == "" {
			t.Skip()
		}
		u, tok, defect := parseXOAUTH2([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
		if defect != nil || u != user || tok != token {
			t.Errorf("XOAUTH2: %q, %q, %v", u, tok, name(defect))
		}
		escaped := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(user)
		u, tok, defect = parseOAUTHBEARER([]byte("n,a=" + escaped + ",\x01host=h\x01port=587\x01auth=Bearer " + token + "\x01\x01"))
		if defect != nil || u != user || tok != token {
			t.Errorf("OAUTHBEARER: %q, %q, %v", u, tok, name(defect))
		}
	})
}
