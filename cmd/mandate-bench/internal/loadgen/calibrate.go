package loadgen

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// Calibration is the cost of the signature operations a token exchange
// cannot avoid, measured on this machine now. Shared cloud machines vary by
// tens of percent from hour to hour; dividing a server's CPU per request by
// Floor gives a figure that compares across runs.
type Calibration struct {
	// ES256Verify is one ECDSA P-256 verification (a subject token).
	ES256Verify time.Duration `json:"es256_verify_ns"`
	// EdDSASign is one Ed25519 signature (the issued token).
	EdDSASign time.Duration `json:"eddsa_sign_ns"`
	// Floor is ES256Verify + EdDSASign.
	Floor time.Duration `json:"floor_ns"`
}

// Calibrate times ES256 verification and EdDSA signing on the calling
// goroutine: the median of rounds rounds of n operations each. It takes
// about rounds × n × 0.25 ms.
func Calibrate(rounds, n int) (Calibration, error) {
	rounds, n = max(rounds, 1), max(n, 1)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Calibration{}, fmt.Errorf("calibration key: %w", err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Calibration{}, fmt.Errorf("calibration key: %w", err)
	}
	msg := make([]byte, 600) // about the size of a signing input
	digest := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, ec, digest[:])
	if err != nil {
		return Calibration{}, fmt.Errorf("calibration signature: %w", err)
	}
	verify := median(rounds, n, func() {
		d := sha256.Sum256(msg)
		ecdsa.VerifyASN1(&ec.PublicKey, d[:], sig)
	})
	sign := median(rounds, n, func() { ed25519.Sign(ed, msg) })
	return Calibration{ES256Verify: verify, EdDSASign: sign, Floor: verify + sign}, nil
}

// median returns the median over rounds of the mean time of n calls of f.
func median(rounds, n int, f func()) time.Duration {
	per := make([]time.Duration, rounds)
	for r := range per {
		start := time.Now()
		for range n {
			f()
		}
		per[r] = time.Since(start) / time.Duration(n)
	}
	slices.Sort(per)
	return per[rounds/2]
}
