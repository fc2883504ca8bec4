package password

import (
	"errors"
	"strings"
	"testing"
)

// known is a hash of "correct horse battery staple" with the OWASP
// parameters and the salt "somesaltsomesalt", made once with
// golang.org/x/crypto/argon2: it pins the format and the derivation, so
// that hashes stored by this release still verify after a change here.
const known = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ISO7kkvFzh19GM8qB7patN3C3Y9HHsjlVTfEZ9T600Y"

func TestHashAndCheck(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want the OWASP parameters", h)
	}
	if err := Validate(h); err != nil {
		t.Errorf("Validate(Hash) = %v", err)
	}
	other, err := Hash("correct horse battery staple")
	if err != nil || other == h {
		t.Errorf("two hashes of one password are equal (%v): the salt is not random", err)
	}
	for _, tc := range []struct {
		name string
		pw   string
		want bool
	}{
		{name: "ok/right", pw: "correct horse battery staple", want: true},
		{name: "fail/wrong", pw: "correct horse battery stapl"},
		{name: "fail/empty", pw: ""},
		{name: "fail/longer", pw: "correct horse battery staple "},
		{name: "fail/case", pw: "Correct horse battery staple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(h, tc.pw)
			if err != nil || got != tc.want {
				t.Errorf("Check = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCheckKnownHash(t *testing.T) {
	ok, err := Check(known, "correct horse battery staple")
	if err != nil || !ok {
		t.Errorf("Check(known) = %v, %v; want true", ok, err)
	}
	// Other parameters within the bounds are accepted.
	cheap := hash{memory: 64, passes: 1, lanes: 2, salt: []byte("saltsaltsalt"), key: nil}
	cheap.key = cheap.derive("pw", 16)
	if ok, err := Check(cheap.encode(), "pw"); err != nil || !ok {
		t.Errorf("Check with other parameters = %v, %v; want true", ok, err)
	}
}

func TestCheckRefusesMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "ISO7kkvFzh19GM8qB7patN3C3Y9HHsjlVTfEZ9T600Y"
	for _, tc := range []struct {
		name    string
		encoded string
	}{
		{"fail/empty", ""},
		{"fail/plain-text", "hunter2hunter2"},
		{"fail/bcrypt", "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"},
		{"fail/argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"fail/argon2d", "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"fail/version-16", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key},
		{"fail/no-version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"fail/params-out-of-order", "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key},
		{"fail/param-missing", "$argon2id$v=19$m=19456,t=2$" + salt + "$" + key},
		{"fail/param-extra", "$argon2id$v=19$m=19456,t=2,p=1,k=1$" + salt + "$" + key},
		{"fail/param-sign", "$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key},
		{"fail/param-leading-zero", "$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key},
		{"fail/memory-gigabytes", "$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key},
		{"fail/memory-just-over", "$argon2id$v=19$m=262145,t=2,p=1$" + salt + "$" + key},
		{"fail/memory-below-8p", "$argon2id$v=19$m=15,t=1,p=2$" + salt + "$" + key},
		{"fail/memory-overflow", "$argon2id$v=19$m=99999999999,t=2,p=1$" + salt + "$" + key},
		{"fail/passes-11", "$argon2id$v=19$m=19456,t=11,p=1$" + salt + "$" + key},
		{"fail/passes-0", "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key},
		{"fail/lanes-17", "$argon2id$v=19$m=19456,t=2,p=17$" + salt + "$" + key},
		{"fail/lanes-0", "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key},
		{"fail/salt-padded", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key},
		{"fail/salt-short", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + key},
		{"fail/salt-not-base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!!!!!!!!!!$" + key},
		{"fail/key-short", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$ISO7kkvFzh1"},
		{"fail/key-huge", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 1000)},
		{"fail/key-stray-bits", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$ISO7kkvFzh19GM8qB7patN3C3Y9HHsjlVTfEZ9T600Z"},
		{"fail/trailing-dollar", known + "$"},
		{"fail/no-leading-dollar", known[1:]},
		{"fail/space", " " + known},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := Check(tc.encoded, "correct horse battery staple")
			if !errors.Is(err, ErrMalformed) || ok {
				t.Errorf("Check = %v, %v; want false, ErrMalformed", ok, err)
			}
			if err := Validate(tc.encoded); !errors.Is(err, ErrMalformed) {
				t.Errorf("Validate = %v, want ErrMalformed", err)
			}
		})
	}
}

// TestCheckNoneDoesCheckWork: a sign-in of an unknown person does the
// work of one with a wrong password: CheckNone derives a key with the very
// parameters and salt length of a hash Hash made, and of the same length.
// (BenchmarkCheck and BenchmarkCheckNone measure the two.)
func TestCheckNoneDoesCheckWork(t *testing.T) {
	made, err := Hash("pw-of-someone")
	if err != nil {
		t.Fatal(err)
	}
	h, err := parse(made)
	if err != nil {
		t.Fatal(err)
	}
	n := noneHash()
	if h.memory != n.memory || h.passes != n.passes || h.lanes != n.lanes || len(h.salt) != len(n.salt) || len(h.key) != keyLen {
		t.Fatalf("Hash made m=%d t=%d p=%d salt %d key %d; CheckNone derives m=%d t=%d p=%d salt %d key %d",
			h.memory, h.passes, h.lanes, len(h.salt), len(h.key), n.memory, n.passes, n.lanes, len(n.salt), keyLen)
	}
}

// FuzzCheck feeds the decoder arbitrary strings: it never panics, whatever
// it accepts is within the bounds and encodes back to itself, and a cheap
// accepted hash checks without error.
func FuzzCheck(f *testing.F) {
	f.Add(known, "correct horse battery staple")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "pw")
	f.Add("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("$argon2i$v=19$m=19456,t=2,p=1$$", "x")
	f.Add("$$$$$", "")
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		h, err := parse(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse(%q) = %v, want ErrMalformed", encoded, err)
			}
			return
		}
		if h.memory > maxMemoryKiB || h.passes > maxPasses || h.lanes > maxLanes || h.passes < 1 || h.lanes < 1 ||
			h.memory < 8*uint32(h.lanes) || len(h.key) > maxKeyLen || len(h.salt) > maxSaltLen {
			t.Fatalf("parse(%q) accepted %+v, out of bounds", encoded, h)
		}
		if got := h.encode(); got != encoded {
			t.Fatalf("parse(%q) encodes back to %q", encoded, got)
		}
		// Derive only when cheap: the bounds allow checks far slower than
		// a fuzzer can afford.
		if h.memory <= 1024 && h.passes <= 2 {
			if _, err := Check(encoded, pw); err != nil {
				t.Fatalf("Check(%q) = %v after parse accepted it", encoded, err)
			}
		}
	})
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	for b.Loop() {
		if ok, err := Check(known, "correct horse battery staple"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkCheckNone(b *testing.B) {
	for b.Loop() {
		CheckNone("correct horse battery staple")
	}
}
