package smtpd

import (
	"strings"

	"github.com/emersion/go-sasl"

	"hve/internal/reply"
)

// The OAuth SASL mechanisms.
const (
	// XOAUTH2 is Google's and Microsoft's mechanism: base64 of
	// "user=ADDRESS^Aauth=Bearer TOKEN^A^A".
	mechXOAUTH2 = "XOAUTH2"
	// OAUTHBEARER is RFC 7628: base64 of
	// "n,a=ADDRESS,^Ahost=...^Aport=...^Aauth=Bearer TOKEN^A^A".
	mechOAUTHBEARER = "OAUTHBEARER"
)

// oauthParser reads the user and the bearer token from a mechanism's
// message, or names its defect (a reply formatted with the mechanism).
type oauthParser func(msg []byte) (user, token string, defect *reply.Reply)

// oauthServer is the server side of XOAUTH2 and OAUTHBEARER: one message
// from the client, sent as the initial response or after an empty
// challenge. A failure is answered at once (no JSON error challenge): SMTP
// clients read the reply code, and the reply says what to fix.
type oauthServer struct {
	mech  string
	parse oauthParser
	check func(user, token string) error
	asked bool
}

func newOAuthServer(mech string, parse oauthParser, check func(user, token string) error) sasl.Server {
	return &oauthServer{mech: mech, parse: parse, check: check}
}

// Next implements sasl.Server.
func (a *oauthServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if len(response) == 0 && !a.asked {
		a.asked = true
		return nil, false, nil // "334 " and wait for the message
	}
	user, token, defect := a.parse(response)
	if defect != nil {
		return nil, true, defect.Format(a.mech)
	}
	return nil, true, a.check(user, token)
}

// parseXOAUTH2 reads "user=ADDRESS^Aauth=Bearer TOKEN^A^A". Keys are
// matched without regard to case, unknown keys are ignored and the closing
// ^A^A may be missing: clients differ in these details.
func parseXOAUTH2(msg []byte) (user, token string, defect *reply.Reply) {
	var auth string
	var haveAuth bool
	for _, field := range strings.Split(string(msg), "\x01") {
		key, value, ok := strings.Cut(field, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(key) {
		case "user":
			if user == "" {
				user = value
			}
		case "auth":
			if !haveAuth {
				auth, haveAuth = value, true
			}
		}
	}
	return checkOAuthFields(strings.TrimSpace(user), auth, haveAuth)
}

// parseOAUTHBEARER reads an RFC 7628 client response: the GS2 header
// "n,a=ADDRESS," (or "y,..."), then ^A-separated key=value pairs, one of
// them "auth=Bearer TOKEN", closed by ^A^A. hve needs the user from a=: an
// absent a= or a GS2 header that does not parse gives "no user".
func parseOAUTHBEARER(msg []byte) (user, token string, defect *reply.Reply) {
	gs2, pairs, _ := strings.Cut(string(msg), "\x01")
	user = gs2User(gs2)
	var auth string
	var haveAuth bool
	for _, field := range strings.Split(pairs, "\x01") {
		key, value, ok := strings.Cut(field, "=")
		if ok && key == "auth" && !haveAuth {
			auth, haveAuth = value, true
		}
	}
	return checkOAuthFields(user, auth, haveAuth)
}

// gs2User returns the authzid of a GS2 header "cbflag,[a=saslname],", or ""
// if the header does not parse or names nobody.
func gs2User(header string) string {
	parts := strings.Split(header, ",")
	if len(parts) != 3 || parts[2] != "" {
		return ""
	}
	switch flag := parts[0]; {
	case flag == "n", flag == "y", strings.HasPrefix(flag, "p="):
	default:
		return ""
	}
	name, ok := strings.CutPrefix(parts[1], "a=")
	if !ok {
		return ""
	}
	return strings.TrimSpace(decodeSASLName(name))
}

// decodeSASLName undoes the escaping of RFC 5801 saslname: "=2C" is a
// comma and "=3D" an equals sign; any other "=" makes it invalid ("").
func decodeSASLName(s string) string {
	if !strings.Contains(s, "=") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"), strings.HasPrefix(s[i:], "=2c"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"), strings.HasPrefix(s[i:], "=3d"):
			b.WriteByte('=')
		default:
			return ""
		}
		i += 2
	}
	return b.String()
}

// checkOAuthFields names the first defect of the fields, in the order of
// the replies: no user, no Bearer, no token.
func checkOAuthFields(user, auth string, haveAuth bool) (string, string, *reply.Reply) {
	if user == "" {
		return "", "", reply.OAuthNoUser
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(auth), " ")
	if !haveAuth || !strings.EqualFold(scheme, "Bearer") {
		return "", "", reply.OAuthNoBearer
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", "", reply.OAuthNoToken
	}
	return user, token, nil
}
