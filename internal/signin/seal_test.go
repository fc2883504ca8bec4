package signin

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// keyOnly is a store.UpstreamGrants that holds a key and nothing else.
type keyOnly struct {
	store.UpstreamGrants
	key []byte
}

func (k *keyOnly) UpstreamGrantKey(_ context.Context, create func() ([]byte, error)) ([]byte, error) {
	if k.key == nil {
		var err error
		if k.key, err = create(); err != nil {
			return nil, err
		}
	}
	return k.key, nil
}

// TestSealGrant: a sealed grant opens as its own person's at its own
// provider only, holds no clear token, and does not open under another
// key or damaged.
func TestSealGrant(t *testing.T) {
	ctx := context.Background()
	s := &Service{Grants: &keyOnly{}, Now: time.Now}
	sec := grantSecret{Sub: "u1", RefreshToken: "the-provider-refresh-token"}
	sealed, err := s.sealGrant(ctx, "sso:sam", "https://idp.example", sec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(sec.RefreshToken)) {
		t.Fatal("the sealed grant holds the token in clear")
	}
	g := store.UpstreamGrant{Subject: "sso:sam", Provider: "https://idp.example", Sealed: sealed}
	if got, err := s.openGrant(ctx, g); err != nil || got != sec {
		t.Fatalf("openGrant = %+v, %v; want %+v", got, err, sec)
	}
	damaged := append([]byte(nil), sealed...)
	damaged[len(damaged)-1] ^= 1
	for name, g := range map[string]store.UpstreamGrant{
		"fail/another-person":   {Subject: "sso:alex", Provider: g.Provider, Sealed: sealed},
		"fail/another-provider": {Subject: g.Subject, Provider: "https://other.example", Sealed: sealed},
		"fail/damaged":          {Subject: g.Subject, Provider: g.Provider, Sealed: damaged},
		"fail/short":            {Subject: g.Subject, Provider: g.Provider, Sealed: sealed[:10]},
	} {
		if _, err := s.openGrant(ctx, g); !errors.Is(err, errSealed) {
			t.Errorf("%s: err = %v, want errSealed", name, err)
		}
	}
	other := &Service{Grants: &keyOnly{}, Now: time.Now}
	if _, err := other.openGrant(ctx, g); !errors.Is(err, errSealed) {
		t.Errorf("under another key: err = %v, want errSealed", err)
	}
}
