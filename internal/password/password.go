package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// The parameters of Hash: OWASP's first argon2id configuration (Password
// Storage Cheat Sheet), 19 MiB of memory, two passes, one lane, with a
// 16-byte salt and a 32-byte key.
const (
	memoryKiB = 19456
	passes    = 2
	lanes     = 1
	saltLen   = 16
	keyLen    = 32
)

// The bounds of the parameters Check accepts. A hash comes from the
// configuration or the store, which an attacker may have written to: the
// bounds keep one check within 256 MiB and ten passes.
const (
	maxMemoryKiB = 256 * 1024
	maxPasses    = 10
	maxLanes     = 16
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// version is the argon2 version this package writes and reads (0x13).
const version = argon2.Version

// ErrMalformed means an encoded hash is not an argon2id PHC string this
// package accepts: another algorithm or version, a parameter out of
// bounds, or bad base64.
var ErrMalformed = errors.New("password: not an argon2id hash in the PHC format")

// b64 is the PHC string format's base64: the standard alphabet without
// padding, and with no stray bits, so that each hash has one encoding.
func b64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

// hash is a decoded PHC string.
type hash struct {
	memory uint32 // KiB
	passes uint32
	lanes  uint8
	salt   []byte
	key    []byte
}

// Hash returns the argon2id hash of pw in the PHC string format, with a
// new random salt and the OWASP parameters. It fails only when the system
// has no randomness.
func Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	h := hash{memory: memoryKiB, passes: passes, lanes: lanes, salt: salt}
	h.key = h.derive(pw, keyLen)
	return h.encode(), nil
}

// Check reports whether pw is the password of encoded, comparing in
// constant time. An encoded value that is not an argon2id PHC string within
// the bounds (at most 256 MiB, 10 passes, 16 lanes) is an error wrapping
// ErrMalformed, never false: a broken stored hash is the operator's to
// fix, not a wrong password.
func Check(encoded, pw string) (bool, error) {
	h, err := parse(encoded)
	if err != nil {
		return false, err
	}
	got := h.derive(pw, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// CheckNone does the work of Check of pw against a hash made by Hash, and
// answers nothing: a sign-in of an unknown person, or of one who has no
// password, calls it so that it takes as long as a wrong password.
func CheckNone(pw string) {
	h := noneHash()
	_ = subtle.ConstantTimeCompare(h.derive(pw, keyLen), make([]byte, keyLen))
}

// noneHash is what CheckNone derives with: Hash's parameters and salt
// length, so that its work is Check's against a hash Hash made.
func noneHash() hash {
	return hash{memory: memoryKiB, passes: passes, lanes: lanes, salt: make([]byte, saltLen)}
}

// Validate returns nil when encoded is a hash that Check accepts, and an
// error wrapping ErrMalformed otherwise. It does not derive a key, so it
// costs nothing.
func Validate(encoded string) error {
	_, err := parse(encoded)
	return err
}

// derive is the argon2id key of pw with h's salt and parameters.
func (h hash) derive(pw string, n uint32) []byte {
	return argon2.IDKey([]byte(pw), h.salt, h.passes, h.memory, h.lanes, n)
}

// encode is h in the PHC string format.
func (h hash) encode() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", version, h.memory, h.passes, h.lanes,
		b64().EncodeToString(h.salt), b64().EncodeToString(h.key))
}

// parse decodes an argon2id PHC string with its parameters in the order
// m, t, p, as Hash writes them, and checks them against the bounds.
func parse(encoded string) (hash, error) {
	fail := func(why string) (hash, error) { return hash{}, fmt.Errorf("%w: %s", ErrMalformed, why) }
	parts := strings.Split(encoded, "$")
	switch {
	case len(parts) < 2 || parts[0] != "":
		return fail("want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	case parts[1] != "argon2id":
		return fail("the algorithm is not argon2id")
	case len(parts) != 6:
		return fail("want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(version) {
		return fail("the version is not v=19")
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return fail("want the parameters m, t and p")
	}
	var v [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		n, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return fail("want the parameters m, t and p, in that order")
		}
		var err error
		v[i], err = strconv.ParseUint(n, 10, 32)
		if err != nil || strconv.FormatUint(v[i], 10) != n {
			return fail("parameter " + name + " is not a number")
		}
	}
	m, t, p := v[0], v[1], v[2]
	switch {
	case p < 1 || p > maxLanes:
		return fail(fmt.Sprintf("p=%d is not within 1 to %d", p, maxLanes))
	case t < 1 || t > maxPasses:
		return fail(fmt.Sprintf("t=%d is not within 1 to %d", t, maxPasses))
	case m < 8*p || m > maxMemoryKiB:
		return fail(fmt.Sprintf("m=%d is not within 8×p to %d KiB", m, maxMemoryKiB))
	}
	salt, ok := decode(parts[4], minSaltLen, maxSaltLen)
	if !ok {
		return fail(fmt.Sprintf("the salt is not %d to %d bytes of unpadded base64", minSaltLen, maxSaltLen))
	}
	key, ok := decode(parts[5], minKeyLen, maxKeyLen)
	if !ok {
		return fail(fmt.Sprintf("the hash is not %d to %d bytes of unpadded base64", minKeyLen, maxKeyLen))
	}
	return hash{memory: uint32(m), passes: uint32(t), lanes: uint8(p), salt: salt, key: key}, nil
}

// decode is s decoded from unpadded base64, when it is the one encoding of
// lo to hi bytes (the decoder skips line breaks, which would give one hash
// several spellings).
func decode(s string, lo, hi int) ([]byte, bool) {
	if len(s) > b64().EncodedLen(hi) {
		return nil, false
	}
	b, err := b64().DecodeString(s)
	if err != nil || len(b) < lo || len(b) > hi || b64().EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
