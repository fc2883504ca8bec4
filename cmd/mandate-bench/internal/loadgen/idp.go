package loadgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// IdP is a loopback identity provider for benchmarks and tests: one ES256
// key, its JWK Set served at URL()+"/jwks", and Token to mint subject
// tokens. It is safe for concurrent use.
type IdP struct {
	// Audience is the aud of the tokens it mints; NewIdP sets "mandate".
	Audience string
	// TTL is the lifetime of the tokens it mints; NewIdP sets 10 minutes.
	TTL time.Duration
	// Now is the clock; NewIdP sets time.Now.
	Now func() time.Time

	kid    string
	url    string
	signer jose.Signer
	srv    *http.Server
	done   chan struct{}
}

// NewIdP generates a key and starts serving its JWK Set on 127.0.0.1 at a
// free port. Close stops it.
func NewIdP() (*IdP, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("idp key: %w", err)
	}
	const kid = "bench-idp-1"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return nil, fmt.Errorf("idp signer: %w", err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		return nil, fmt.Errorf("idp jwks: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("idp listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	})
	p := &IdP{
		Audience: "mandate",
		TTL:      10 * time.Minute,
		Now:      time.Now,
		kid:      kid,
		url:      "http://" + ln.Addr().String(),
		signer:   signer,
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done:     make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// URL is the provider's issuer, http://127.0.0.1:PORT.
func (p *IdP) URL() string { return p.url }

// JWKSURI is where its JWK Set is served.
func (p *IdP) JWKSURI() string { return p.url + "/jwks" }

// Token mints an ES256 JWT for subject with iss, sub, aud, iat and exp,
// plus the extra claims (which may override those).
func (p *IdP) Token(subject string, extra map[string]any) (string, error) {
	now := p.Now()
	claims := map[string]any{
		"iss": p.url, "sub": subject, "aud": p.Audience,
		"iat": now.Unix(), "exp": now.Add(p.TTL).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("idp claims: %w", err)
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("idp sign: %w", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("idp serialize: %w", err)
	}
	return s, nil
}

// Close stops serving the JWK Set and waits for the server to end.
func (p *IdP) Close() error {
	err := p.srv.Close()
	<-p.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
