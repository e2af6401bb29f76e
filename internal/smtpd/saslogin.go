package smtpd

import (
	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the LOGIN mechanism (the obsolete but
// widespread draft-murchison-sasl-login): ask for the username, then the
// password. go-sasl has only the client side.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

func newLoginServer(check func(username, password string) error) sasl.Server {
	return &loginServer{check: check}
}

// Next implements sasl.Server.
func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch a.step {
	case 0:
		a.step++
		if len(response) == 0 { // no initial response: ask for the username
			return []byte("Username:"), false, nil
		}
		a.username = string(response)
		a.step++
		return []byte("Password:"), false, nil
	case 1:
		a.username = string(response)
		a.step++
		return []byte("Password:"), false, nil
	default:
		return nil, true, a.check(a.username, string(response))
	}
}
