// Package access decides who may sign in to an SMTP endpoint, how, and from
// where: credentials (argon2id passwords or OAuth tokens), account state,
// the endpoint an identity belongs on, security defaults, authentication
// policies, the retirement of basic auth, allowed apps and networks, and
// Conditional Access.
//
// Every sign-in, and every `hve account diagnose`, goes through one function,
// Checker.Check, which records each check it makes as a Step. A diagnose is
// a sign-in that does not verify a secret, so the two can never disagree.
//
// # Order of checks
//
// A sign-in stops at the first check that fails; a diagnose goes on where
// it can and gives the reply of the first failure.
//
//  1. Smart lockout (Step "smart lockout"): a throttled source, or a
//     username locked for this source, is refused with reply.AuthFailed
//     before any password hashing. See LockoutConfig for the rule.
//  2. Identity ("identity"): the username, normalized, is an HVE account's
//     primary address, else a mailbox's primary address or alias. Unknown:
//     reply.AuthFailed, after verifying a dummy hash so that it takes as
//     long as a wrong password.
//  3. Credential ("password" or "token"). Basic: the password against the
//     identity's argon2id hash, or a hit in the verified-credential cache;
//     a mailbox without a password fails; reply.AuthFailed. OAuth: the
//     token (TokenVerifier): expired gives reply.TokenExpired, invalid
//     reply.AuthFailed; issued before the identity's tokens-valid-from,
//     reply.TokenExpired. Wrong passwords, unknown usernames and invalid
//     tokens count for smart lockout; a proven credential makes the source
//     familiar.
//  4. Endpoint ("endpoint"): on the HVE endpoint a mailbox converted from
//     an HVE account gets reply.ConvertedToMailbox and any other mailbox
//     reply.MailboxOnHVEEndpoint; on the client endpoint an HVE account
//     gets reply.AccountOnClientEndpoint.
//  5. Account enabled ("account enabled"): reply.AccountLocked.
//  6. Basic only: security defaults on ("security defaults",
//     reply.SecurityDefaults); on the client endpoint, client SMTP auth
//     disabled for the tenant ("client SMTP auth", reply.ClientAuthDisabled);
//     the effective authentication policy, the identity's own, else the
//     tenant's default, else none (allowed), must allow basic SMTP
//     ("authentication policy", reply.BasicAuthBlocked); the retirement of
//     basic auth on the endpoint ("basic auth retirement"): from its sunset
//     reply.BasicAuthRetired, during its ramp a share of sign-ins rising
//     linearly from 0 to 100% reply.BasicAuthPhasingOut, and all of them
//     from the ramp's end.
//  7. OAuth only: the token carries Mail.Send ("Mail.Send permission",
//     reply.TokenNoPermission); for an HVE account, the token's app is on
//     its allowed apps list ("allowed apps", reply.AppNotAllowed).
//  8. Allowed networks ("allowed networks"): an HVE account with a list of
//     networks signs in only from inside one (reply.NetworkNotAllowed).
//  9. Conditional Access (one Step per policy, `Conditional Access "NAME"`;
//     see EvaluateCA): an applying policy that is on blocks with
//     reply.ConditionalAccessBlocked (the log and trace name it, the reply
//     does not); an applying report-only policy lets the sign-in through
//     and is recorded in trace as trace.EventSignInReportOnly.
//
// A directory error at any step gives reply.AuthTemporaryFailure. Refused
// sign-ins are logged ("sign-in refused") and recorded in trace as
// trace.EventSignInRefused. Directory data is read afresh by every Check,
// so an admin's change applies to the very next sign-in; the only state a
// Checker keeps is smart lockout and the verified-credential cache, both in
// memory and per node.
package access

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/emersion/go-smtp"

	"hve/internal/directory"
)

// Method is how a client proves who it is.
type Method string

// The sign-in methods.
const (
	// Basic is a username and password (AUTH LOGIN or PLAIN): a legacy
	// client app in Conditional Access terms.
	Basic Method = "basic"
	// OAuth is a bearer token (AUTH XOAUTH2 or OAUTHBEARER): a modern
	// client app.
	OAuth Method = "oauth"
)

// Attempt is one sign-in to check.
type Attempt struct {
	Endpoint directory.Endpoint
	Method   Method
	// Username is the address the client signs in as (the SASL user).
	Username string
	// Password (Basic) or Token (OAuth) is the secret to verify.
	Password string
	Token    string
	ClientIP netip.Addr
	// Diagnose walks every check without a secret: credential checks are
	// reported as not verified, and nothing is counted (no lockout, no
	// trace). For OAuth, App names the app id to assume.
	Diagnose bool
	App      string
}

// Verdict is the outcome of one check.
type Verdict string

// The verdicts of a check.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	// ReportOnly: a report-only Conditional Access policy would have blocked.
	ReportOnly Verdict = "report-only"
	// Skipped: the check does not apply to this sign-in (with the reason).
	Skipped Verdict = "skipped"
)

// Step is one check of a sign-in, in the order they are made.
type Step struct {
	Check   string  `json:"check"`
	Verdict Verdict `json:"verdict"`
	Detail  string  `json:"detail"`
	// Fix is, for a failure, what to do about it, usually an hve command.
	Fix string `json:"fix,omitempty"`
}

// Identity is who signed in: an HVE account or a mailbox.
type Identity struct {
	Tenant  directory.Tenant
	Kind    directory.Kind // KindAccount or KindMailbox
	Account *directory.Account
	Mailbox *directory.Mailbox
	// App is the app id of an OAuth sign-in.
	App string
	// SignedInAt is when the sign-in was checked; a session whose
	// identity's TokensValidFrom is later is closed.
	SignedInAt time.Time
}

// Address is the identity's primary address.
func (id *Identity) Address() string {
	if id.Account != nil {
		return id.Account.Address
	}
	if id.Mailbox != nil {
		return id.Mailbox.Address
	}
	return ""
}

// Result is the outcome of Check.
type Result struct {
	// Identity is set when the sign-in succeeds (and, for a diagnose, when
	// the identity was found).
	Identity *Identity
	// Reply is nil when the sign-in succeeds; otherwise the SMTP reply to
	// give.
	Reply *smtp.SMTPError
	// Reason says, for the log and trace, why the sign-in was refused
	// (a Conditional Access refusal names the policy here, never on the
	// wire).
	Reason string
	Steps  []Step
}

// OK reports whether the sign-in succeeded.
func (r *Result) OK() bool { return r.Reply == nil }

// TokenVerifier checks OAuth bearer tokens (package oauth implements it).
type TokenVerifier interface {
	// Verify checks that the token is signed by hve for this tenant, or by
	// an external issuer the tenant trusts with the audience configured
	// for it, and that it is within its lifetime. The error wraps
	// ErrTokenExpired when the token is expired or not yet valid, and
	// ErrTokenInvalid otherwise.
	Verify(ctx context.Context, token string, tenant directory.Tenant) (Claims, error)
}

// Errors of TokenVerifier.Verify.
var (
	ErrTokenExpired = errors.New("token expired")
	ErrTokenInvalid = errors.New("token invalid")
)

// Claims is what access needs from a verified token.
type Claims struct {
	// Issuer is the token's iss.
	Issuer string
	// AppID is the app (client) id the token was issued to (appid, azp or
	// client_id claim).
	AppID string
	// MailSend: the token carries the Mail.Send permission (for an
	// external issuer: the role configured for it).
	MailSend bool
	IssuedAt time.Time
	Expires  time.Time
}
