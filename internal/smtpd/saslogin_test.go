package smtpd

import (
	"bytes"
	"errors"
	"testing"
)

var errWrongPassword = errors.New("wrong password")

// loginCheck records the credentials it is called with and accepts only
// user@example.com with "secret".
type loginCheck struct {
	calls              int
	username, password string
}

func (c *loginCheck) check(username, password string) error {
	c.calls++
	c.username, c.password = username, password
	if username == "user@example.com" && password == "secret" {
		return nil
	}
	return errWrongPassword
}

type step struct {
	response  string
	challenge string // want; "" when done
	done      bool
}

func TestLoginServer(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		wantUser  string
		wantPass  string
		wantError error
	}{
		{
			name: "without initial response",
			steps: []step{
				{"", "Username:", false},
				{"user@example.com", "Password:", false},
				{"secret", "", true},
			},
			wantUser: "user@example.com", wantPass: "secret",
		},
		{
			name: "username as initial response",
			steps: []step{
				{"user@example.com", "Password:", false},
				{"secret", "", true},
			},
			wantUser: "user@example.com", wantPass: "secret",
		},
		{
			name: "wrong password",
			steps: []step{
				{"", "Username:", false},
				{"user@example.com", "Password:", false},
				{"guess", "", true},
			},
			wantUser: "user@example.com", wantPass: "guess", wantError: errWrongPassword,
		},
		{
			name: "empty username and password are passed on, not skipped",
			steps: []step{
				{"", "Username:", false},
				{"", "Password:", false},
				{"", "", true},
			},
			wantError: errWrongPassword,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &loginCheck{}
			srv := newLoginServer(c.check)
			var err error
			for i, st := range tc.steps {
				var challenge []byte
				var done bool
				challenge, done, err = srv.Next([]byte(st.response))
				if string(challenge) != st.challenge || done != st.done {
					t.Fatalf("step %d: Next(%q) = %q, done %v; want %q, done %v", i, st.response, challenge, done, st.challenge, st.done)
				}
				if !done && err != nil {
					t.Fatalf("step %d: Next(%q) failed early: %v", i, st.response, err)
				}
				if !done && c.calls != 0 {
					t.Fatalf("step %d: credentials checked before the password was given", i)
				}
			}
			if c.calls != 1 || c.username != tc.wantUser || c.password != tc.wantPass {
				t.Errorf("check called %d times with %q, %q; want once with %q, %q", c.calls, c.username, c.password, tc.wantUser, tc.wantPass)
			}
			if !errors.Is(err, tc.wantError) {
				t.Errorf("final error = %v, want %v", err, tc.wantError)
			}
		})
	}
}

// FuzzLoginServer drives the LOGIN exchange with arbitrary responses and
// checks it against the mechanism's definition: an empty initial response
// asks for the username, a non-empty one is the username; then the
// password; then the check, exactly once, whose error is the result.
func FuzzLoginServer(f *testing.F) {
	f.Add([]byte(""), []byte("user@example.com"), []byte("secret"))
	f.Add([]byte("user@example.com"), []byte("secret"), []byte("ignored"))
	f.Add([]byte(""), []byte(""), []byte(""))
	f.Add([]byte("\x00user\x00pass"), []byte("\xff\xfe"), []byte("Password:"))
	f.Fuzz(func(t *testing.T, initial, second, third []byte) {
		c := &loginCheck{}
		srv := newLoginServer(c.check)
		wantUser, wantPass := string(initial), string(second)
		responses := [][]byte{initial, second}
		wantChallenges := []string{"Password:"}
		if len(initial) == 0 {
			wantUser, wantPass = string(second), string(third)
			responses = [][]byte{initial, second, third}
			wantChallenges = []string{"Username:", "Password:"}
		}
		for i, resp := range responses {
			challenge, done, err := srv.Next(bytes.Clone(resp))
			last := i == len(responses)-1
			if done != last {
				t.Fatalf("Next #%d(%q): done = %v, want %v", i, resp, done, last)
			}
			if !last {
				if err != nil || string(challenge) != wantChallenges[i] {
					t.Fatalf("Next #%d(%q) = %q, %v; want %q", i, resp, challenge, err, wantChallenges[i])
				}
				if c.calls != 0 {
					t.Fatalf("Next #%d: credentials checked before the password", i)
				}
				continue
			}
			if c.calls != 1 || c.username != wantUser || c.password != wantPass {
				t.Fatalf("check called %d times with %q, %q; want once with %q, %q", c.calls, c.username, c.password, wantUser, wantPass)
			}
			wantOK := wantUser == "user@example.com" && wantPass == "secret"
			if (err == nil) != wantOK || err != nil && !errors.Is(err, errWrongPassword) {
				t.Fatalf("final Next = %v, want the check's result (accepted: %v)", err, wantOK)
			}
		}
	})
}
