package directory

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ExternalSending is a tenant's external sending mode: whether its HVE
// accounts may send to recipients outside its accepted domains.
type ExternalSending string

// The external sending modes.
const (
	// ExternalOff refuses every external recipient (550 5.5.105), as HVE
	// does. The empty mode means the same.
	ExternalOff ExternalSending = "off"
	// ExternalLimited is HVE's preview behaviour: external recipients are
	// accepted within DefaultExternalRecipientsPerDay per account per day
	// and DefaultExternalMessagesPerMinute messages per account per minute,
	// and leave through the tenant's outbound smarthost.
	ExternalLimited ExternalSending = "limited"
)

// ParseExternalSending checks s names an external sending mode.
func ParseExternalSending(s string) (ExternalSending, error) {
	switch ExternalSending(strings.ToLower(strings.TrimSpace(s))) {
	case ExternalOff:
		return ExternalOff, nil
	case ExternalLimited:
		return ExternalLimited, nil
	}
	return "", fmt.Errorf("external sending mode %q is not one of off, limited", s)
}

// Defaults and fixed values of the tenant and account limits (spec section
// 4; docs/limits.md).
const (
	// DefaultPricePerMillion mirrors HVE's published price: 42 (currency
	// units) per million recipients.
	DefaultPricePerMillion = 42
	// HVEPreviewDailyRecipientLimit is the tenant limit of HVE's preview,
	// an example value for Settings.DailyRecipientLimit (unset: unlimited).
	HVEPreviewDailyRecipientLimit = 100_000
	// DefaultExternalRecipientsPerDay is the external recipients an HVE
	// account may send to per UTC day in ExternalLimited mode.
	DefaultExternalRecipientsPerDay = 2000
	// DefaultExternalMessagesPerMinute is the messages with external
	// recipients an HVE account may send per minute in ExternalLimited mode.
	DefaultExternalMessagesPerMinute = 10
)

// DefaultSettings are the settings of a new tenant.
func DefaultSettings() Settings {
	return Settings{ExternalSending: ExternalOff, PricePerMillion: DefaultPricePerMillion}
}

// ExternalLimitedMode reports whether the tenant's HVE accounts may send to
// external recipients (within the limits of ExternalLimited).
func (s Settings) ExternalLimitedMode() bool { return s.ExternalSending == ExternalLimited }

// ParseSmarthost checks s is host:port (a name or an IP address, and a port
// from 1 to 65535) and returns it in canonical form (lower-case name,
// IPv6 in brackets).
func ParseSmarthost(s string) (string, error) {
	host, port, err := net.SplitHostPort(strings.TrimSpace(s))
	if err != nil || host == "" {
		return "", fmt.Errorf("smarthost %q is not HOST:PORT, such as smtp.example.net:25", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("smarthost %q: port %q is not a number from 1 to 65535", s, port)
	}
	if strings.ContainsAny(host, " \t/@") {
		return "", fmt.Errorf("smarthost %q: %q is not a host name or IP address", s, host)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(p)), nil
}

// CheckWarnAt checks a warning level: a percentage from 1 to 100, or 0 for
// none.
func CheckWarnAt(pct int) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("warning level %d%% is not a percentage from 1 to 100 (or 0 for none)", pct)
	}
	return nil
}
