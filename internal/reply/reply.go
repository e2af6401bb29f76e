// Package reply is the one table of every SMTP reply the hve endpoint can
// give. docs/errors.md mirrors it (a test keeps the two in step), so an admin
// who searches for a reply finds its cause and its fix.
//
// Replies that hve's own code sends are variables of this package; replies
// that the SMTP protocol library sends on its own (syntax errors, command
// order) are listed in Protocol so that the docs cover them too.
package reply

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/emersion/go-smtp"
)

// Reply is one SMTP reply: its codes, its text and what an admin should know
// about it.
type Reply struct {
	// Name is a stable identifier, used in trace details, logs and metrics.
	Name string
	Code int
	// Enhanced is the RFC 3463 enhanced status code.
	Enhanced smtp.EnhancedCode
	// Text is the reply text; %s verbs, where present, are filled by Format.
	Text string
	// Cause and Fix are for the operator docs.
	Cause, Fix string
}

// Err returns the reply as an error that go-smtp writes to the client as is.
func (r *Reply) Err() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: r.Enhanced, Message: r.Text}
}

// Format returns the reply with its %s verbs filled from args. The text
// stays one line: line breaks and other control characters in an argument
// (a parser's error may end in CRLF) become spaces, as go-smtp would
// otherwise split the reply into lines with the enhanced code on the last.
func (r *Reply) Format(args ...any) *smtp.SMTPError {
	msg := strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, fmt.Sprintf(r.Text, args...))
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: r.Enhanced, Message: strings.TrimSpace(msg)}
}

// Line renders an SMTP error as the single reply line a client sees,
// e.g. "550 5.1.10 RESOLVER.ADR.RecipientNotFound; ...". Trace events carry it.
func Line(e *smtp.SMTPError) string {
	c := e.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, c[0], c[1], c[2], e.Message)
}

// Replies hve's own code sends, in the order a session meets them.
var (
	MustStartTLS = &Reply{
		Name: "must-starttls", Code: 530, Enhanced: smtp.EnhancedCode{5, 7, 0},
		Text:  "Must issue a STARTTLS command first",
		Cause: "The client sent AUTH or MAIL on a connection that is not encrypted yet.",
		Fix:   "Enable STARTTLS in the application (often called 'TLS' or 'Use secure connection'); port 587 always needs it.",
	}
	AuthFailed = &Reply{
		Name: "auth-failed", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 3},
		Text:  "Authentication unsuccessful",
		Cause: "The username is not an HVE account's primary address, or the password is wrong. Both give the same reply so that nobody can probe which accounts exist.",
		Fix:   "Use the account's primary address as the username and check the password; the server log (`sign-in refused`, with a reason) says which of the two it was. Reset it with `hve account set ADDRESS --password-stdin`.",
	}
	MailboxOnHVEEndpoint = &Reply{
		Name: "mailbox-on-hve-endpoint", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 3},
		Text:  "Authentication unsuccessful, this endpoint accepts High Volume Email accounts only",
		Cause: "A mailbox (a person's or a shared mailbox) signed in with its correct password on the HVE endpoint.",
		Fix:   "Create an HVE account for the application (`hve account create`) and sign in with it; a mailbox cannot send through the HVE endpoint.",
	}
	AccountLocked = &Reply{
		Name: "account-locked", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, account locked",
		Cause: "The credentials are right but the HVE account is disabled.",
		Fix:   "Enable it with `hve account set ADDRESS --enabled true` if the application should send again.",
	}
	AccountOnClientEndpoint = &Reply{
		Name: "account-on-client-endpoint", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 57},
		Text:  "Client not authenticated to send mail. Use the High Volume Email endpoint",
		Cause: "An HVE account signed in with its correct credentials on the standard client endpoint (port 588), which is for mailboxes.",
		Fix:   "Point the application at the HVE endpoint (port 587).",
	}
	ConvertedToMailbox = &Reply{
		Name: "converted-to-mailbox", Code: 451, Enhanced: smtp.EnhancedCode{4, 7, 0},
		Text:  "Temporary server error. Please try again later AUTH2003",
		Cause: "The HVE account was converted into a mailbox (`hve account convert-to-mailbox`, HVE's \"licence assigned\" case); a mailbox cannot use the HVE endpoint.",
		Fix:   "Create a new HVE account for the application (`hve account create`), or send as the mailbox through the standard client endpoint (port 588).",
	}
	SecurityDefaults = &Reply{
		Name: "security-defaults", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, the organization configuration does not allow this authentication request",
		Cause: "Security defaults are on for the tenant, which refuses every basic (LOGIN, PLAIN) sign-in. OAuth still works.",
		Fix:   "Move the application to OAuth (AUTH XOAUTH2 with a token from /oauth2/token), or turn security defaults off: `hve tenant set --security-defaults off`.",
	}
	BasicAuthBlocked = &Reply{
		Name: "basic-auth-blocked", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, basic auth is blocked",
		Cause: "The identity's authentication policy (its own, or else the tenant's default) does not allow basic authentication for SMTP.",
		Fix:   "Move the application to OAuth, or assign a policy that allows it: `hve auth-policy create allow-smtp --allow-basic-smtp` then `hve account set ADDRESS --auth-policy allow-smtp`. `hve account diagnose ADDRESS` names the policy in force.",
	}
	ClientAuthDisabled = &Reply{
		Name: "client-smtp-auth-disabled", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
		Cause: "The tenant switch \"client SMTP auth disabled\" is on; it closes basic authentication on the standard client endpoint (not on the HVE endpoint).",
		Fix:   "Use OAuth, send through an HVE account on port 587, or `hve tenant set --client-smtp-auth-disabled off`.",
	}
	BasicAuthRetired = &Reply{
		Name: "basic-auth-retired", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, basic authentication on this endpoint was retired on %s; sign in with OAuth (AUTH XOAUTH2)",
		Cause: "The tenant set a sunset date for basic authentication on this endpoint, and it has passed.",
		Fix:   "Move the application to OAuth: register it (`hve app create`), grant Mail.Send, allow it on the account (`hve account allow-app`). To postpone, `hve tenant set --hve-basic-auth-sunset DATE|none` (or `--client-basic-auth-sunset`).",
	}
	BasicAuthPhasingOut = &Reply{
		Name: "basic-auth-phasing-out", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, basic authentication on this endpoint is being retired (%d%% of sign-ins refused now, all from %s); move to OAuth (AUTH XOAUTH2)",
		Cause: "The tenant set a staged rejection window for basic authentication: a share of basic sign-ins that rises linearly to 100% at the window's end is refused, so that apps still on basic auth get noticed before the sunset.",
		Fix:   "Move the application to OAuth (see docs/access.md). The window is `hve tenant set --hve-basic-auth-ramp START..END|none` (or `--client-basic-auth-ramp`).",
	}
	ConditionalAccessBlocked = &Reply{
		Name: "conditional-access-blocked", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. AADSTS53003: Access has been blocked by Conditional Access policies",
		Cause: "An enabled Conditional Access policy applies to this identity, client app (legacy = basic, modern = OAuth) and source network, and its grant blocks (block, require-mfa and require-compliant-device all block SMTP, which can satisfy neither). The policy's name is in the server log and the trace event, not in the reply.",
		Fix:   "`hve account diagnose ADDRESS --from-ip IP` names the policy; exclude the account or its network from it (`hve ca-policy set NAME --exclude-users ADDRESS`), or set the policy to report-only.",
	}
	NetworkNotAllowed = &Reply{
		Name: "network-not-allowed", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 139},
		Text:  "Authentication unsuccessful, this account may not sign in from this network",
		Cause: "The HVE account has a list of allowed source networks and the client's address is in none of them.",
		Fix:   "Add the client's network: `hve account set ADDRESS --allowed-networks CIDR,...` (or `none` to lift the restriction).",
	}
	TokenExpired = &Reply{
		Name: "token-expired", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 143},
		Text:  "Expired token",
		Cause: "The OAuth token's lifetime is over (or has not begun), or it was issued before the identity's tokens-valid-from time (sessions were revoked).",
		Fix:   "Fetch a new token (POST /oauth2/token) and sign in again; tokens last an hour.",
	}
	TokenNoPermission = &Reply{
		Name: "token-no-permission", Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 144},
		Text:  "XOAUTH2 authentication failed. Invalid API permissions",
		Cause: "The OAuth token does not carry the Mail.Send permission (for an external issuer: the role configured for it).",
		Fix:   "Grant it with admin consent: `hve app grant APP Mail.Send`, then fetch a new token.",
	}
	AppNotAllowed = &Reply{
		Name: "app-not-allowed", Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 240},
		Text:  "The application is not allowed for use with this High Volume Email account",
		Cause: "The token is valid, but its app is not on the HVE account's allowed apps list (Add-HVEAppAccess). The log names the app id.",
		Fix:   "`hve account allow-app ADDRESS APP` (the app id or the object id; at most 10 apps per account).",
	}
	OAuthBadBase64 = &Reply{
		Name: "oauth-bad-base64", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 120},
		Text:  "Malformed %s data: not valid base64",
		Cause: "The XOAUTH2 or OAUTHBEARER initial response is not valid base64.",
		Fix:   "Base64-encode the whole SASL string (`user=ADDRESS^Aauth=Bearer TOKEN^A^A` for XOAUTH2).",
	}
	OAuthNoUser = &Reply{
		Name: "oauth-no-user", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 121},
		Text:  "Malformed %s data: no user (user= for XOAUTH2, a= for OAUTHBEARER)",
		Cause: "The SASL data names no user, so hve cannot tell which HVE account signs in.",
		Fix:   "Put the HVE account's primary address in the user= (XOAUTH2) or a= (OAUTHBEARER) field.",
	}
	OAuthNoBearer = &Reply{
		Name: "oauth-no-bearer", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 122},
		Text:  "Malformed %s data: no auth=Bearer field",
		Cause: "The SASL data has no `auth=Bearer <token>` field (a missing field, or another scheme than Bearer).",
		Fix:   "Send `auth=Bearer TOKEN` in the SASL data.",
	}
	OAuthNoToken = &Reply{
		Name: "oauth-no-token", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 123},
		Text:  "Malformed %s data: the Bearer token is empty",
		Cause: "The auth field says Bearer but carries no token.",
		Fix:   "Fetch a token (POST /oauth2/token) and put it after `Bearer `.",
	}
	SessionRevoked = &Reply{
		Name: "session-revoked", Code: 421, Enhanced: smtp.EnhancedCode{4, 7, 0},
		Text:  "Session revoked by the administrator; sign in again",
		Cause: "An admin revoked the identity's sessions (`hve account set ADDRESS --revoke-sessions`); the connection is closed.",
		Fix:   "The client reconnects and signs in again; old tokens are refused, fetch a new one.",
	}
	ClientConcurrency = &Reply{
		Name: "client-concurrency", Code: 432, Enhanced: smtp.EnhancedCode{4, 3, 2},
		Text:  "STOREDRV.ClientSubmit; sender thread limit exceeded (at most %d concurrent connections per mailbox)",
		Cause: "The mailbox already has the most concurrent signed-in connections the standard client endpoint allows (3).",
		Fix:   "Send over fewer connections at once; the client retries later. Applications that need more use an HVE account.",
	}
	MailboxRecipientQuota = &Reply{
		Name: "mailbox-recipient-quota", Code: 452, Enhanced: smtp.EnhancedCode{4, 5, 3},
		Text:  "Recipient limit of %d per rolling 24 hours reached for %s; capacity frees from %s",
		Cause: "The mailbox sent to its limit of recipients in the last 24 hours on the standard client endpoint (10,000).",
		Fix:   "Wait until the time given, or send bulk mail through an HVE account.",
	}
	MailboxRelayDenied = &Reply{
		Name: "mailbox-relay-denied", Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 54},
		Text:  "SMTP; Unable to relay recipient in non-accepted domain",
		Cause: "On the standard client endpoint, the recipient's domain is not an accepted domain of the tenant; hve delivers inside the organisation only.",
		Fix:   "Check the address, or add the domain with `hve domain add` if it is the organisation's.",
	}
	AuthTemporaryFailure = &Reply{
		Name: "auth-temporary-failure", Code: 454, Enhanced: smtp.EnhancedCode{4, 7, 0},
		Text:  "Temporary authentication failure; try again later",
		Cause: "The directory could not be read while checking the sign-in (database error).",
		Fix:   "The client retries. If it persists, read the server log for the store error.",
	}
	UnsupportedMechanism = &Reply{
		Name: "auth-mechanism-unsupported", Code: 504, Enhanced: smtp.EnhancedCode{5, 7, 4},
		Text:  "Unsupported authentication mechanism",
		Cause: "The client asked for a SASL mechanism that the endpoint does not offer.",
		Fix:   "Use one of the mechanisms EHLO lists after STARTTLS (LOGIN, PLAIN, XOAUTH2, OAUTHBEARER).",
	}
	NotAuthenticated = &Reply{
		Name: "not-authenticated", Code: 530, Enhanced: smtp.EnhancedCode{5, 7, 57},
		Text:  "Client not authenticated to send mail",
		Cause: "The client sent MAIL over TLS without signing in first.",
		Fix:   "Configure the application with the HVE account's address and password (SMTP AUTH).",
	}
	SenderDenied = &Reply{
		Name: "sender-denied", Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 60},
		Text:  "SMTP; Client does not have permissions to send as this sender",
		Cause: "MAIL FROM is neither the signed-in account's primary address nor one of its aliases.",
		Fix:   "Send from the account's address, or add the address as an alias of the account.",
	}
	InvalidAddress = &Reply{
		Name: "invalid-address", Code: 501, Enhanced: smtp.EnhancedCode{5, 1, 3},
		Text:  "Bad address syntax: %s",
		Cause: "A MAIL FROM or RCPT TO address is not of the form local@domain.",
		Fix:   "Correct the address in the application.",
	}
	TooManyRecipients = &Reply{
		Name: "too-many-recipients", Code: 452, Enhanced: smtp.EnhancedCode{4, 5, 3},
		Text:  "Too many recipients; at most %d per message",
		Cause: "The message already has the most envelope recipients allowed (50 on the HVE endpoint; a distribution group counts as one).",
		Fix:   "Send the rest in another message (clients that follow RFC 5321 do so by themselves), or send to a distribution group.",
	}
	ExternalRecipient = &Reply{
		Name: "external-recipient", Code: 550, Enhanced: smtp.EnhancedCode{5, 5, 105},
		Text:  "External sending is not supported for High Volume Email accounts",
		Cause: "The recipient's domain is not one of the tenant's accepted domains, and the tenant's external sending mode is `off` (the default).",
		Fix:   "HVE accounts send inside the organisation only. If the domain is the organisation's, add it with `hve domain add`. To let accounts send outside within HVE's preview limits: `hve tenant set --external-sending limited --outbound-smarthost HOST:PORT`.",
	}
	ExternalNoSmarthost = &Reply{
		Name: "external-no-smarthost", Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 1},
		Text:  "External sending is limited for this tenant but no outbound smarthost is configured; ask the admin to set one (hve tenant set --outbound-smarthost)",
		Cause: "The tenant's external sending mode is `limited`, but external mail can only leave through an outbound smarthost and none is set.",
		Fix:   "Set the smarthost the organisation sends outside mail through: `hve tenant set --outbound-smarthost HOST:PORT`; or turn external sending off (`--external-sending off`).",
	}
	ExternalRecipientQuota = &Reply{
		Name: "external-recipient-quota", Code: 450, Enhanced: smtp.EnhancedCode{4, 5, 102},
		Text:  "Message rejected as the tenant quota for external recipients was exceeded: limit of %d external recipients per day reached for %s; resets at 00:00 UTC",
		Cause: "In `limited` external sending mode, the HVE account has sent to its limit of external recipients for the UTC day (2,000, as in HVE's preview).",
		Fix:   "Wait until 00:00 UTC; the client retries later by itself. Internal recipients are not affected.",
	}
	ExternalRateLimit = &Reply{
		Name: "external-rate-limit", Code: 450, Enhanced: smtp.EnhancedCode{4, 5, 104},
		Text:  "Message rejected as the rate limit for external emails has been exceeded: at most %d messages with external recipients per minute for %s; try again after %s",
		Cause: "In `limited` external sending mode, the HVE account has sent its limit of messages with external recipients in the last minute (10, as in HVE's preview). The first external recipient of a message counts it.",
		Fix:   "Send fewer messages to outside recipients at once, or put several external recipients in one message; the client retries later by itself.",
	}
	TenantDailyRecipientLimit = &Reply{
		Name: "tenant-daily-recipient-limit", Code: 452, Enhanced: smtp.EnhancedCode{4, 5, 3},
		Text:  "Daily internal recipient limit of %d reached for tenant %s; resets at 00:00 UTC",
		Cause: "The tenant's HVE accounts together have sent to the tenant's daily limit of internal recipients (`hve tenant set --daily-recipient-limit`; unlimited unless set, HVE's preview had 100,000).",
		Fix:   "Wait until 00:00 UTC, or raise the limit: `hve tenant set --daily-recipient-limit N|unlimited`. `hve tenant show` shows it.",
	}
	AccountDailyRecipientLimit = &Reply{
		Name: "account-daily-recipient-limit", Code: 452, Enhanced: smtp.EnhancedCode{4, 5, 3},
		Text:  "Daily recipient limit of %d reached for %s; resets at 00:00 UTC",
		Cause: "The HVE account has sent to its own daily recipient cap (internal and external recipients, per UTC day), set by an admin.",
		Fix:   "Wait until 00:00 UTC, or raise the account's cap: `hve account set ADDRESS --daily-recipient-limit N|none`.",
	}
	RecipientNotFound = &Reply{
		Name: "recipient-not-found", Code: 550, Enhanced: smtp.EnhancedCode{5, 1, 10},
		Text:  "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
		Cause: "The recipient is in an authoritative accepted domain but no mailbox or group has that address (HVE accounts cannot receive).",
		Fix:   "Check the address for typos, or create the mailbox or group. If some of the domain's mailboxes live on another mail system, the domain must be an `internal-relay` domain (remove it and add it again with `--type internal-relay` once no address uses it).",
	}
	MessageTooLarge = &Reply{
		Name: "message-too-large", Code: 552, Enhanced: smtp.EnhancedCode{5, 3, 4},
		Text:  "Message size exceeds fixed maximum message size",
		Cause: "The message (headers and attachments included, as sent) is larger than 10 MB (10485760 bytes), declared with MAIL SIZE= or found while reading DATA.",
		Fix:   "Send smaller attachments, or a link to the file instead of the file.",
	}
	MalformedHeader = &Reply{
		Name: "malformed-header", Code: 554, Enhanced: smtp.EnhancedCode{5, 6, 0},
		Text:  "Message header could not be parsed: %s",
		Cause: "The message does not start with a valid RFC 5322 header section.",
		Fix:   "Fix the application's message generation; every header line must be `Name: value`, followed by an empty line before the body.",
	}
	HeaderFromDenied = &Reply{
		Name: "header-from-denied", Code: 554, Enhanced: smtp.EnhancedCode{5, 2, 252},
		Text:  "SendAsDenied; %s not allowed to send as %s",
		Cause: "The message's From header is not the signed-in account's address or alias.",
		Fix:   "Set the From header to the account's address (the display name may be anything), or add the address as an alias.",
	}
	StorageUnavailable = &Reply{
		Name: "storage-unavailable", Code: 451, Enhanced: smtp.EnhancedCode{4, 3, 0},
		Text:  "Temporary storage failure, the message was not accepted; try again later",
		Cause: "The message could not be written to the queue (database error or shutdown). Nothing of it was kept.",
		Fix:   "The client retries by itself. If it persists, read the server log for the store error.",
	}
	StorageFull = &Reply{
		Name: "storage-full", Code: 452, Enhanced: smtp.EnhancedCode{4, 3, 1},
		Text:  "Insufficient system storage, the message was not accepted; try again later",
		Cause: "The disk holding the data directory is full.",
		Fix:   "Free disk space or grow the volume; the client retries by itself.",
	}
	StorageLow = &Reply{
		Name: "storage-low", Code: 452, Enhanced: smtp.EnhancedCode{4, 3, 1},
		Text:  "Insufficient system storage: free disk space on this server is below its configured minimum, so it accepts no mail for now; try again later",
		Cause: "The filesystem holding the data directory has less free space than `[queue] min_free_disk` (default 1 GiB), most often because a next hop has been down for long and the queue grew. hve stops accepting at MAIL and DATA before the disk fills; delivery goes on. The server log says `free disk space below the minimum` with the numbers.",
		Fix:   "Bring the next hop back (`hve queue list --status deferred` shows what waits and why), or free disk space or grow the volume. Mail is accepted again within a second of the free space rising above the minimum; clients retry by themselves.",
	}
	Accepted = &Reply{
		Name: "accepted", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0},
		Text:  "OK <%s>",
		Cause: "The message and its envelope are on disk (fsynced); it will be delivered.",
		Fix:   "Nothing to fix. The id in angle brackets is the queue id: `hve trace --queue-id ID` shows every step.",
	}
)

// Own lists every reply hve's code sends, for the docs and their test.
var Own = []*Reply{
	MustStartTLS, AuthFailed, MailboxOnHVEEndpoint, AccountLocked, AccountOnClientEndpoint, ConvertedToMailbox,
	SecurityDefaults, BasicAuthBlocked, ClientAuthDisabled, BasicAuthRetired, BasicAuthPhasingOut,
	ConditionalAccessBlocked, NetworkNotAllowed, TokenExpired, TokenNoPermission, AppNotAllowed,
	OAuthBadBase64, OAuthNoUser, OAuthNoBearer, OAuthNoToken, SessionRevoked, ClientConcurrency,
	MailboxRecipientQuota, MailboxRelayDenied,
	AuthTemporaryFailure, UnsupportedMechanism,
	NotAuthenticated, SenderDenied, InvalidAddress, TooManyRecipients, ExternalRecipient,
	ExternalNoSmarthost, ExternalRecipientQuota, ExternalRateLimit, TenantDailyRecipientLimit, AccountDailyRecipientLimit,
	RecipientNotFound, MessageTooLarge, MalformedHeader, HeaderFromDenied,
	StorageUnavailable, StorageFull, StorageLow, Accepted,
}

// Protocol lists the replies the SMTP protocol library sends by itself, for
// command order and syntax, so the docs cover every reply a client can see.
var Protocol = []*Reply{
	{Name: "greeting", Code: 220, Text: "<hostname> ESMTP Service Ready", Cause: "Connection opened.", Fix: "-"},
	{Name: "ehlo", Code: 250, Text: "Hello <name>, then the extensions (PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING, STARTTLS or AUTH, SMTPUTF8, SIZE 10485760)", Cause: "EHLO (HELO gets `250 2.0.0 Hello <name>`).", Fix: "-"},
	{Name: "helo-syntax", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: "Domain/address argument required for HELO", Cause: "EHLO or HELO without a name.", Fix: "Send `EHLO your-host-name`."},
	{Name: "starttls-ready", Code: 220, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Ready to start TLS", Cause: "STARTTLS accepted; the TLS handshake follows.", Fix: "-"},
	{Name: "tls-handshake-failed", Code: 550, Enhanced: smtp.EnhancedCode{5, 0, 0}, Text: "Handshake error", Cause: "The TLS handshake after STARTTLS failed, most often because the client offers only TLS 1.0 or 1.1 (the endpoint requires 1.2 or 1.3).", Fix: "Update the client's TLS library or enable TLS 1.2 in it; the server log has the handshake error."},
	{Name: "already-tls", Code: 502, Enhanced: smtp.EnhancedCode{5, 5, 1}, Text: "Already running in TLS", Cause: "A second STARTTLS.", Fix: "-"},
	{Name: "auth-challenge", Code: 334, Text: "<base64 challenge>", Cause: "AUTH LOGIN asks for the username, then the password.", Fix: "-"},
	{Name: "auth-ok", Code: 235, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Authentication succeeded", Cause: "The account signed in.", Fix: "-"},
	{Name: "auth-missing-mechanism", Code: 502, Enhanced: smtp.EnhancedCode{5, 5, 4}, Text: "Missing parameter", Cause: "AUTH without a mechanism name.", Fix: "Send `AUTH PLAIN` or `AUTH LOGIN`."},
	{Name: "auth-bad-base64", Code: 454, Enhanced: smtp.EnhancedCode{4, 7, 0}, Text: "Invalid base64 data", Cause: "An AUTH response was not valid base64.", Fix: "Fix the client's SASL encoding."},
	{Name: "auth-cancelled", Code: 501, Enhanced: smtp.EnhancedCode{5, 0, 0}, Text: "Negotiation cancelled", Cause: "The client answered an AUTH challenge with `*`.", Fix: "-"},
	{Name: "already-authenticated", Code: 503, Enhanced: smtp.EnhancedCode{5, 5, 1}, Text: "Already authenticated", Cause: "A second AUTH in one session.", Fix: "Sign in once per connection."},
	{Name: "mail-ok", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Roger, accepting mail from <address>", Cause: "MAIL FROM accepted.", Fix: "-"},
	{Name: "rcpt-ok", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "I'll make sure <address> gets this", Cause: "RCPT TO accepted (a repeated recipient too; it gets one copy).", Fix: "-"},
	{Name: "data-go-ahead", Code: 354, Text: "Go ahead. End your data with <CR><LF>.<CR><LF>", Cause: "DATA accepted; the message follows.", Fix: "-"},
	{Name: "bdat-continue", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Continue", Cause: "A BDAT chunk (not the last) was received.", Fix: "-"},
	{Name: "noop", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "I have successfully done nothing", Cause: "NOOP.", Fix: "-"},
	{Name: "rset", Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Session reset", Cause: "RSET: the transaction in progress is dropped.", Fix: "-"},
	{Name: "vrfy", Code: 252, Enhanced: smtp.EnhancedCode{2, 5, 0}, Text: "Cannot VRFY user, but will accept message", Cause: "VRFY never tells whether an address exists.", Fix: "-"},
	{Name: "bye", Code: 221, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "Bye", Cause: "QUIT.", Fix: "-"},
	{Name: "not-implemented", Code: 502, Enhanced: smtp.EnhancedCode{5, 5, 1}, Text: "<command> command not implemented", Cause: "SEND, SOML, SAML, EXPN, HELP or TURN.", Fix: "-"},
	{Name: "syntax-error", Code: 500, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: "Syntax errors, <command> command unrecognized", Cause: "An unknown command.", Fix: "Check the client speaks SMTP (not implicit TLS on port 587)."},
	{Name: "bad-sequence", Code: 502, Enhanced: smtp.EnhancedCode{5, 5, 1}, Text: "Missing MAIL FROM command. / Missing RCPT TO command. / Please introduce yourself first. / <command> not allowed during message transfer", Cause: "Commands out of order.", Fix: "EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT, DATA."},
	{Name: "path-syntax", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: "Was expecting MAIL arg syntax of FROM:<address> (or RCPT ... TO:<address>)", Cause: "MAIL or RCPT without the `FROM:<...>` or `TO:<...>` form.", Fix: "Fix the client's command syntax."},
	{Name: "bad-parameters", Code: 501, Enhanced: smtp.EnhancedCode{5, 5, 4}, Text: "Unable to parse MAIL ESMTP parameters / Unable to parse SIZE as an integer / Unknown BODY value / DATA command should not have any arguments / Malformed size argument (and similar)", Cause: "A malformed command argument.", Fix: "Fix the client's command syntax."},
	{Name: "unknown-parameter", Code: 500, Enhanced: smtp.EnhancedCode{5, 5, 4}, Text: "Unknown MAIL FROM argument / Unknown RCPT TO argument / Malformed AUTH parameter value", Cause: "A MAIL or RCPT parameter the endpoint does not know.", Fix: "Send only the parameters of the extensions EHLO lists."},
	{Name: "extension-not-offered", Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 4}, Text: "<parameter> is not implemented", Cause: "A parameter of an extension the endpoint does not offer (DSN's NOTIFY, RET, ENVID and ORCPT, REQUIRETLS, BINARYMIME, ...).", Fix: "Send only the parameters of the extensions EHLO lists."},
	{Name: "too-many-errors", Code: 500, Enhanced: smtp.EnhancedCode{5, 5, 1}, Text: "Too many errors. Quiting now", Cause: "Too many syntax errors in one session; the connection is closed.", Fix: "Check the client speaks SMTP."},
	{Name: "too-busy", Code: 421, Enhanced: smtp.EnhancedCode{4, 4, 5}, Text: "Too busy. Try again later.", Cause: "The server has reached its connection limit.", Fix: "The client retries; raise the limit if this is routine."},
	{Name: "internal-error", Code: 421, Enhanced: smtp.EnhancedCode{4, 0, 0}, Text: "Internal server error", Cause: "A bug in the server while handling a command; the connection is closed and nothing of the transaction is kept.", Fix: "The client retries. Report it with the server log, which has the stack trace."},
	{Name: "transaction-failed", Code: 554, Enhanced: smtp.EnhancedCode{5, 0, 0}, Text: "Error: transaction failed: <reason>", Cause: "Reading the message failed (the connection broke or timed out mid-DATA); the client rarely sees it. Nothing of the message is kept.", Fix: "Check the network between the client and the server."},
}

// Markdown renders the table for docs/errors.md.
func Markdown() string {
	var b strings.Builder
	row := func(r *Reply) {
		code := fmt.Sprintf("%d", r.Code)
		if r.Enhanced != (smtp.EnhancedCode{}) {
			code += fmt.Sprintf(" %d.%d.%d", r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
		}
		text := strings.ReplaceAll(r.Text, "%d", "<n>")
		text = strings.ReplaceAll(text, "%s", "<...>")
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s | %s |\n", r.Name, code, esc(text), esc(r.Cause), esc(r.Fix))
	}
	b.WriteString("| name | code | text | cause | fix |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range Own {
		row(r)
	}
	b.WriteString("\nReplies of the SMTP protocol layer (command order and syntax):\n\n")
	b.WriteString("| name | code | text | cause | fix |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range Protocol {
		row(r)
	}
	return b.String()
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
