package signin

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mandate-dev/mandate/internal/store"
)

// An identity provider's refresh token is kept sealed with
// XChaCha20-Poly1305 under a 32-byte key the store keeps
// (store.UpstreamGrants.UpstreamGrantKey): every instance of a shared
// PostgreSQL store then opens what another sealed, as it verifies the
// tokens another signed with the signing keys the store also keeps. The
// person's Mandate id and the provider's issuer are the additional data,
// so that a sealed token moved to another person's row does not open.
// Sealed is sealVersion, the random 24-byte nonce, then the ciphertext.

// sealVersion is the first byte of a sealed grant.
const sealVersion = 1

// errSealed is a sealed grant that does not open: another key, another
// row's, or damaged.
var errSealed = errors.New("signin: a sealed provider grant does not open")

// grantSecret is what a grant seals: the provider's sub for the person,
// which Recheck checks the refreshed tokens against, and the refresh
// token.
type grantSecret struct {
	Sub          string `json:"sub"`
	RefreshToken string `json:"refresh_token"`
}

// newGrantKey returns 32 random bytes.
func newGrantKey() ([]byte, error) {
	key := make([]byte, chacha20poly1305.KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return key, nil
}

// grantAEAD returns the AEAD that seals grants, reading (or creating) the
// key in the store on first use.
func (s *Service) grantAEAD(ctx context.Context) (cipher.AEAD, error) {
	s.sealMu.Lock()
	defer s.sealMu.Unlock()
	if s.seal != nil {
		return s.seal, nil
	}
	key, err := s.Grants.UpstreamGrantKey(ctx, newGrantKey)
	if err != nil {
		return nil, fmt.Errorf("signin: the key of provider grants: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("signin: the key of provider grants: %w", err)
	}
	s.seal = aead
	return aead, nil
}

// grantAD is the additional data of the grant of subject at provider.
func grantAD(subject, provider string) []byte {
	return []byte("mandate upstream grant\x00" + subject + "\x00" + provider)
}

// sealGrant seals sec for the grant of subject at provider.
func (s *Service) sealGrant(ctx context.Context, subject, provider string, sec grantSecret) ([]byte, error) {
	aead, err := s.grantAEAD(ctx)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(sec)
	if err != nil {
		return nil, fmt.Errorf("signin: %w", err)
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plain)+aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:]) // crypto/rand.Read never fails (Go 1.24+)
	return aead.Seal(out, out[1:], plain, grantAD(subject, provider)), nil
}

// openGrant opens g's sealed secret; errSealed when it does not open.
func (s *Service) openGrant(ctx context.Context, g store.UpstreamGrant) (grantSecret, error) {
	aead, err := s.grantAEAD(ctx)
	if err != nil {
		return grantSecret{}, err
	}
	n := aead.NonceSize()
	if len(g.Sealed) < 1+n+aead.Overhead() || g.Sealed[0] != sealVersion {
		return grantSecret{}, errSealed
	}
	plain, err := aead.Open(nil, g.Sealed[1:1+n], g.Sealed[1+n:], grantAD(g.Subject, g.Provider))
	if err != nil {
		return grantSecret{}, errSealed
	}
	var sec grantSecret
	if err := json.Unmarshal(plain, &sec); err != nil || sec.Sub == "" || sec.RefreshToken == "" {
		return grantSecret{}, errSealed
	}
	return sec, nil
}
