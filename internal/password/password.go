// Package password hashes and verifies secrets with argon2id, stored in the
// PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters follow the OWASP recommendation for argon2id (19 MiB, 2 passes,
// 1 lane): slow enough to make a stolen database expensive to crack, cheap
// enough that an SMTP sign-in costs a few milliseconds.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// slots bounds how many argon2id computations run at once. Each takes
// memoryKiB of memory and one core for some milliseconds: more at a time than
// there are cores only adds memory (a burst of sign-ins, say, when every
// connection of an application's pool opens at once), not throughput.
var slots = make(chan struct{}, runtime.NumCPU())

func idKey(pw, salt []byte, t, mem uint32, p uint8, n uint32) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey(pw, salt, t, mem, p, n)
}

// ErrMismatch is returned by Verify when the password is wrong.
var ErrMismatch = errors.New("password does not match")

// Hash returns the argon2id hash of pw with a fresh random salt.
func Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading salt: %w", err)
	}
	key := idKey([]byte(pw), salt, passes, memoryKiB, lanes, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memoryKiB, passes, lanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a hash made by Hash. It returns ErrMismatch for a
// wrong password and another error for a malformed hash.
func Verify(hash, pw string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("password hash is not in argon2id PHC format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return fmt.Errorf("unsupported argon2 version %q", parts[2])
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return fmt.Errorf("malformed argon2 parameters %q: %w", parts[3], err)
	}
	// argon2.IDKey panics on zero passes or lanes.
	if t < 1 || p < 1 {
		return fmt.Errorf("malformed argon2 parameters %q: passes and lanes must be at least 1", parts[3])
	}
	// A corrupted or hostile hash must not make one sign-in take gigabytes
	// or minutes.
	if mem > 1<<20 || t > 64 {
		return fmt.Errorf("argon2 parameters %q exceed the limits (1 GiB, 64 passes)", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("malformed argon2 salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("malformed argon2 key: %w", err)
	}
	// RFC 9106 minimums; an empty key also makes argon2.IDKey panic.
	if len(salt) < 8 || len(want) < 4 {
		return fmt.Errorf("malformed argon2 hash: salt of %d bytes or key of %d bytes is too short", len(salt), len(want))
	}
	got := idKey([]byte(pw), salt, t, mem, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// Generate returns a random password of n characters from an alphabet
// without look-alike characters, for accounts created without one.
func Generate(n int) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // cannot happen on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
