package loadgen

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-dev/mandate/oauth"
)

// BareConfig configures NewBare.
type BareConfig struct {
	// Issuer is the iss of the tokens it signs.
	Issuer string
	// Clients maps client_id to client secret (client_secret_post).
	Clients map[string]string
	// IdPIssuer and IdPAudience are what a subject token's iss and aud
	// must be; IdPKeys verify it (ES256 only).
	IdPIssuer   string
	IdPAudience string
	IdPKeys     jose.JSONWebKeySet
	// TTL is the lifetime of the tokens it signs; 10 minutes when zero.
	TTL time.Duration
}

// NewBare returns the handler of the bare token endpoint that `mandate
// bench` measures beside Mandate, in the same run, as the scale reference
// of issue 2 ("a bare net/http server"). It answers exactly the
// token-exchange request the bench sends, with the work no token exchange
// can skip and nothing else: it reads the form, checks the client secret
// (SHA-256, constant time), verifies the ES256 subject token with go-jose
// (signature, iss, aud, exp, nbf), builds a token with a nested act, signs
// it with a fresh Ed25519 key and answers the RFC 8693 JSON. It keeps no
// state: no store, no jti, no audit record, no delegation, policy or
// revocation check, no log line. It serves POST /token and GET /healthz.
func NewBare(cfg BareConfig) (http.Handler, error) {
	cfg.IdPKeys = bareKeys(cfg.IdPKeys)
	if cfg.Issuer == "" || cfg.IdPIssuer == "" || cfg.IdPAudience == "" || len(cfg.IdPKeys.Keys) == 0 || len(cfg.Clients) == 0 {
		return nil, errors.New("loadgen: the bare server needs an issuer, clients and an identity provider with ES256 keys")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("loadgen: bare key: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", bareKID))
	if err != nil {
		return nil, fmt.Errorf("loadgen: bare signer: %w", err)
	}
	b := &bare{cfg: cfg, signer: signer, public: priv.Public().(ed25519.PublicKey), secrets: make(map[string][32]byte, len(cfg.Clients))}
	if b.cfg.TTL <= 0 {
		b.cfg.TTL = 10 * time.Minute
	}
	for id, secret := range cfg.Clients {
		b.secrets[id] = sha256.Sum256([]byte(secret))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", b.token)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	return mux, nil
}

type bare struct {
	cfg     BareConfig
	signer  jose.Signer
	public  ed25519.PublicKey
	secrets map[string][32]byte
}

// bareKID is the kid of the bare server's signing key.
const bareKID = "bare-1"

// bareActor is the act claim (RFC 8693 §4.1) of the tokens it signs.
type bareActor struct {
	Sub string          `json:"sub"`
	Act json.RawMessage `json:"act,omitempty"`
}

// bareClaims are the claims of the tokens it signs.
type bareClaims struct {
	Iss      string     `json:"iss"`
	Sub      string     `json:"sub"`
	Aud      string     `json:"aud,omitempty"`
	Act      *bareActor `json:"act,omitempty"`
	Scope    string     `json:"scope,omitempty"`
	ClientID string     `json:"client_id"`
	JTI      string     `json:"jti"`
	Iat      int64      `json:"iat"`
	Nbf      int64      `json:"nbf"`
	Exp      int64      `json:"exp"`
}

func (b *bare) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		bareError(w, http.StatusBadRequest, oauth.ErrInvalidRequest)
		return
	}
	form := r.PostForm
	id := form.Get("client_id")
	want, known := b.secrets[id]
	got := sha256.Sum256([]byte(form.Get("client_secret")))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 || !known {
		bareError(w, http.StatusUnauthorized, oauth.ErrInvalidClient)
		return
	}
	now := time.Now()
	switch form.Get("grant_type") {
	case oauth.GrantClientCredentials:
		// The client's own token, addressed to this server: what the bench
		// sends as actor_token.
		b.issue(w, bareClaims{Iss: b.cfg.Issuer, Sub: id, Aud: b.cfg.Issuer, ClientID: id, Scope: form.Get("scope")}, now, now.Add(b.cfg.TTL))
		return
	case oauth.GrantTokenExchange:
	default:
		bareError(w, http.StatusBadRequest, oauth.ErrUnsupportedGrantType)
		return
	}
	if at := form.Get("actor_token"); at != "" && !b.ownToken(at, id, now) {
		bareError(w, http.StatusBadRequest, oauth.ErrInvalidRequest)
		return
	}
	tok, err := josejwt.ParseSigned(form.Get("subject_token"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		bareError(w, http.StatusBadRequest, oauth.ErrInvalidRequest)
		return
	}
	keys := b.cfg.IdPKeys.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		bareError(w, http.StatusBadRequest, oauth.ErrInvalidRequest)
		return
	}
	var std josejwt.Claims
	var extra struct {
		Act json.RawMessage `json:"act"`
	}
	if err := tok.Claims(keys[0].Key, &std, &extra); err != nil ||
		std.ValidateWithLeeway(josejwt.Expected{Issuer: b.cfg.IdPIssuer, AnyAudience: josejwt.Audience{b.cfg.IdPAudience}, Time: now}, time.Minute) != nil ||
		std.Subject == "" || std.Expiry == nil {
		bareError(w, http.StatusBadRequest, oauth.ErrInvalidRequest)
		return
	}
	exp := now.Add(b.cfg.TTL)
	if e := std.Expiry.Time(); e.Before(exp) {
		exp = e
	}
	b.issue(w, bareClaims{
		Iss: b.cfg.Issuer, Sub: std.Subject, Aud: form.Get("audience"),
		Act:   &bareActor{Sub: id, Act: extra.Act},
		Scope: form.Get("scope"), ClientID: id,
	}, now, exp)
}

// ownToken reports whether raw is a token this server signed for client,
// addressed to itself, in force and acting for no one: an actor_token.
func (b *bare) ownToken(raw, client string, now time.Time) bool {
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].KeyID != bareKID {
		return false
	}
	var std josejwt.Claims
	var extra struct {
		Act json.RawMessage `json:"act"`
	}
	if err := tok.Claims(b.public, &std, &extra); err != nil {
		return false
	}
	err = std.ValidateWithLeeway(josejwt.Expected{Issuer: b.cfg.Issuer, Subject: client, AnyAudience: josejwt.Audience{b.cfg.Issuer}, Time: now}, time.Minute)
	return err == nil && extra.Act == nil
}

// issue fills in jti, iat, nbf and exp, signs c and answers with it.
func (b *bare) issue(w http.ResponseWriter, c bareClaims, now, exp time.Time) {
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c.JTI, c.Iat, c.Nbf, c.Exp = hex.EncodeToString(jti[:]), now.Unix(), now.Unix(), exp.Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		bareError(w, http.StatusInternalServerError, oauth.ErrServerError)
		return
	}
	jws, err := b.signer.Sign(payload)
	if err != nil {
		bareError(w, http.StatusInternalServerError, oauth.ErrServerError)
		return
	}
	at, err := jws.CompactSerialize()
	if err != nil {
		bareError(w, http.StatusInternalServerError, oauth.ErrServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "issued_token_type": oauth.TokenTypeAccessToken, "token_type": "Bearer",
		"expires_in": int64(exp.Sub(now) / time.Second), "scope": c.Scope,
	})
}

func bareError(w http.ResponseWriter, status int, code oauth.ErrorCode) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]oauth.ErrorCode{"error": code})
}

// bareKeys keeps only the ES256 public keys of set.
func bareKeys(set jose.JSONWebKeySet) jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: slices.DeleteFunc(slices.Clone(set.Keys), func(k jose.JSONWebKey) bool {
		return k.Algorithm != string(jose.ES256) || !k.Valid() || !k.IsPublic()
	})}
}
