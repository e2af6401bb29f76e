package adminauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters: the ones every authenticator app understands (RFC 6238
// with SHA-1, 6 digits, 30-second steps).
const (
	TOTPDigits = 6
	TOTPStep   = 30 * time.Second
	// totpSkew is how many steps either side of now a code is accepted,
	// for clocks that drift and people who type slowly.
	totpSkew = 1
)

// HOTP returns the RFC 4226 one-time password of key for counter, with
// digits digits, using the HMAC hash h (sha1.New for RFC 4226 and the
// common TOTP; RFC 6238 also allows SHA-256 and SHA-512).
func HOTP(key []byte, counter uint64, digits int, h func() hash.Hash) string {
	mac := hmac.New(h, key)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	// Dynamic truncation (RFC 4226 section 5.3).
	off := sum[len(sum)-1] & 0x0f
	code := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, code%mod)
}

// TOTPStepAt is the RFC 6238 time step (counter) of t with 30-second steps
// from the Unix epoch.
func TOTPStepAt(t time.Time) int64 { return t.Unix() / int64(TOTPStep/time.Second) }

// TOTPAt returns the 6-digit SHA-1 TOTP code of key at t.
func TOTPAt(key []byte, t time.Time) string {
	return HOTP(key, uint64(TOTPStepAt(t)), TOTPDigits, sha1.New)
}

// VerifyTOTP checks a code against key at now, accepting one step either
// side, and only steps after lastStep (a code is good once). It returns
// the step of the code that matched.
func VerifyTOTP(key []byte, code string, now time.Time, lastStep int64) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != TOTPDigits || len(key) == 0 {
		return 0, false
	}
	cur := TOTPStepAt(now)
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		if step <= lastStep {
			continue
		}
		want := HOTP(key, uint64(step), TOTPDigits, sha1.New)
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// NewTOTPSecret returns a random 160-bit TOTP key (the size RFC 4226
// recommends).
func NewTOTPSecret() ([]byte, error) {
	key := make([]byte, 20)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return key, nil
}

// TOTPBase32 is the key as authenticator apps take it when typed in.
func TOTPBase32(key []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
}

// TOTPURI is the otpauth:// URI that authenticator apps read (from a QR
// code or pasted) to add the key for user at issuer.
func TOTPURI(issuer, user string, key []byte) string {
	label := url.PathEscape(issuer + ":" + user)
	q := url.Values{"secret": {TOTPBase32(key)}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}
