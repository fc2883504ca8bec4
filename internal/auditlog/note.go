package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/mandate-dev/mandate/internal/auditchain"
)

// KeyName names the checkpoint signing key in notes.
const KeyName = "mandate-audit"

// header starts every checkpoint's text.
const header = "mandate audit log"

// ErrBadCheckpoint is wrapped by every error about a checkpoint that does
// not parse or whose signature does not verify.
var ErrBadCheckpoint = errors.New("auditlog: bad checkpoint")

// Checkpoint is what a signed note says: the log had Size records, with
// this Merkle root and this chain hash for record Size.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   auditchain.Hash
	Head   auditchain.Hash
}

// text is the note's text.
func (c Checkpoint) text() string {
	return fmt.Sprintf("%s %s\n%d\n%s\nhead %s\n", header, c.Origin, c.Size,
		base64.StdEncoding.EncodeToString(c.Root[:]), base64.StdEncoding.EncodeToString(c.Head[:]))
}

// NewKey returns a new checkpoint signing key (note private key format).
func NewKey() (string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	return skey, err
}

// VerifierKey returns the public verifier key of skey, which auditors pin.
func VerifierKey(skey string) (string, error) {
	// skey is PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>; the
	// base64 may itself hold '+'.
	rest, ok := strings.CutPrefix(skey, "PRIVATE+KEY+")
	name, rest, ok2 := strings.Cut(rest, "+")
	_, key, ok3 := strings.Cut(rest, "+")
	if !ok || !ok2 || !ok3 {
		return "", errors.New("auditlog: malformed signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("auditlog: malformed signing key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// Sign returns c as a note signed with skey.
func Sign(c Checkpoint, skey string) (string, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return "", fmt.Errorf("auditlog: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: c.text()}, s)
	if err != nil {
		return "", fmt.Errorf("auditlog: %w", err)
	}
	return string(msg), nil
}

// Open verifies a signed checkpoint note with vkey and parses it.
func Open(msg, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: verifier key: %w", ErrBadCheckpoint, err)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	return parse(n.Text)
}

func parse(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[4] != "" || !strings.HasPrefix(lines[0], header+" ") || !strings.HasPrefix(lines[3], "head ") {
		return Checkpoint{}, fmt.Errorf("%w: not a checkpoint", ErrBadCheckpoint)
	}
	c := Checkpoint{Origin: strings.TrimPrefix(lines[0], header+" ")}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return Checkpoint{}, fmt.Errorf("%w: size", ErrBadCheckpoint)
	}
	c.Size = size
	for _, f := range []struct {
		dst *auditchain.Hash
		src string
	}{{&c.Root, lines[2]}, {&c.Head, strings.TrimPrefix(lines[3], "head ")}} {
		b, err := base64.StdEncoding.DecodeString(f.src)
		if err != nil || len(b) != len(f.dst) {
			return Checkpoint{}, fmt.Errorf("%w: hash", ErrBadCheckpoint)
		}
		copy(f.dst[:], b)
	}
	return c, nil
}

// ErrNoCheckpoint is the error of WitnessNotes for a witness file that
// holds no checkpoint.
var ErrNoCheckpoint = errors.New("auditlog: the witness file holds no checkpoint")

// WitnessNotes returns the checkpoint notes of a witness file, as
// SplitNotes splits them. A file that holds none is ErrNoCheckpoint: a
// log checked against it would be checked against nothing, and an empty
// or wrong file where a witness was named is itself something to look
// into, not a pass.
func WitnessNotes(data string) ([]string, error) {
	notes := SplitNotes(data)
	if len(notes) == 0 {
		return nil, ErrNoCheckpoint
	}
	return notes, nil
}

// SplitNotes splits a witness file (signed notes, one after another) into
// its notes. A note starts with the checkpoint header line; anything before
// the first one is ignored.
func SplitNotes(data string) []string {
	var notes []string
	var cur strings.Builder
	flush := func() {
		if n := strings.TrimRight(cur.String(), "\n"); n != "" {
			notes = append(notes, n+"\n")
		}
		cur.Reset()
	}
	started := false
	for line := range strings.Lines(data) {
		if strings.HasPrefix(line, header+" ") {
			flush()
			started = true
		}
		if started {
			cur.WriteString(line)
		}
	}
	flush()
	return notes
}
