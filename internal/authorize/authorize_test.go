package authorize

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/oauth"
)

const registered = "https://app.example/cb"

// TestT40RedirectURICorpus: against a registered https://app.example/cb
// every near miss is refused, and a loopback redirect may vary only its
// port.
func TestT40RedirectURICorpus(t *testing.T) {
	regs := []string{registered, "http://127.0.0.1:8400/cb", "http://[::1]/cb?x=1", "http://localhost/callback"}
	cases := []struct {
		got  string
		want bool
	}{
		{registered, true},
		{"HTTPS://APP.EXAMPLE/cb", false},
		{"https://app.example/Cb", false},
		{"https://app.example/cb/", false},
		{"https://app.example/cb?x=1", false},
		{"https://app.example/cb#frag", false},
		{"https://app.example@evil/cb", false},
		{"https://app.example/%2e%2e/cb", false},
		{"https://app.example/cb%252f", false},
		{"https://app.example/..;/cb", false},
		{"https://app.example\\/evil", false},
		{"/\thttps://evil", false},
		{"///evil", false},
		{"https://app.example:8443/cb", false},
		{"https://аpp.example/cb", false}, // Cyrillic а: an IDN homograph
		{"https://appaexample/cb", false},
		{"", false},
		{"http://127.0.0.1:8400/cb", true},
		{"http://127.0.0.1:51234/cb", true},
		{"http://127.0.0.1/cb", true},
		{"http://127.0.0.2:8400/cb", false},
		{"http://localhost:8400/cb", false}, // localhost is registered only as itself
		{"http://LOCALHOST:8400/cb", false},
		{"http://127.0.0.1:8400/cb2", false},
		{"http://127.0.0.1:8400/cb?x=1", false},
		{"http://127.0.0.1:8400/cb?", false},
		{"https://127.0.0.1:8400/cb", false},
		{"http://evil@127.0.0.1:8400/cb", false},
		{"http://127.0.0.1:84x0/cb", false},
		{"http://[::1]:9999/cb?x=1", true},
		{"http://[::1]:9999/cb?x=2", false},
		{"http://localhost:3000/callback", true},
		{"http://localhost/callback", true},
		{"http://localhost:3000/callback2", false},
		{"http://127.0.0.1:3000/callback", false},
		{"https://localhost:3000/callback", false},
	}
	for _, c := range cases {
		if got := MatchRedirect(regs, c.got); got != c.want {
			t.Errorf("MatchRedirect(%q) = %v, want %v", c.got, got, c.want)
		}
	}
}

func challengeOf(verifier string) string {
	s := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

var verifier = strings.Repeat("v", 43)

func request(mod func(url.Values)) url.Values {
	q := url.Values{
		"client_id": {"agent:infrabot"}, "redirect_uri": {registered}, "response_type": {"code"},
		"state": {"s1"}, "scope": {"deploy:create monitoring:read deploy:create"},
		"code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"},
	}
	if mod != nil {
		mod(q)
	}
	return q
}

func lookup(id string) (Client, error) {
	switch id {
	case "agent:infrabot":
		return Client{ID: id, RedirectURIs: []string{registered}}, nil
	case "agent:off":
		return Client{ID: id, RedirectURIs: []string{registered}, Disabled: true}, nil
	case "agent:broken":
		return Client{}, errors.New("database down")
	}
	return Client{}, ErrUnknownClient
}

// TestParse: the request's checks, and which failures are shown on a page
// (never redirected) and which go back to the client.
func TestParse(t *testing.T) {
	cases := []struct {
		name   string
		mod    func(url.Values)
		page   string          // PageError reason
		code   oauth.ErrorCode // redirected error
		reason string
	}{
		{name: "ok"},
		{name: "no client", mod: func(q url.Values) { q.Del("client_id") }, page: "client_id_missing"},
		{name: "unknown client", mod: func(q url.Values) { q.Set("client_id", "agent:nobody") }, page: "client_unknown"},
		{name: "store down", mod: func(q url.Values) { q.Set("client_id", "agent:broken") }, page: "store_unavailable"},
		{name: "other redirect", mod: func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, page: "redirect_uri_mismatch"},
		{name: "no redirect", mod: func(q url.Values) { q.Del("redirect_uri") }, page: "redirect_uri_mismatch"},
		{name: "disabled", mod: func(q url.Values) { q.Set("client_id", "agent:off") }, code: oauth.ErrUnauthorizedClient, reason: "agent_disabled"},
		{name: "token response", mod: func(q url.Values) { q.Set("response_type", "token") }, code: "unsupported_response_type", reason: "response_type_unsupported"},
		{name: "no challenge", mod: func(q url.Values) { q.Del("code_challenge") }, code: oauth.ErrInvalidRequest, reason: "pkce_missing"},
		{name: "plain", mod: func(q url.Values) { q.Set("code_challenge_method", "plain") }, code: oauth.ErrInvalidRequest, reason: "pkce_method_unsupported"},
		{name: "no method", mod: func(q url.Values) { q.Del("code_challenge_method") }, code: oauth.ErrInvalidRequest, reason: "pkce_method_unsupported"},
		{name: "short challenge", mod: func(q url.Values) { q.Set("code_challenge", "abc") }, code: oauth.ErrInvalidRequest, reason: "pkce_challenge_malformed"},
		{name: "repeated state", mod: func(q url.Values) { q.Add("state", "s2") }, code: oauth.ErrInvalidRequest, reason: "parameter_repeated"},
		{name: "long state", mod: func(q url.Values) { q.Set("state", strings.Repeat("s", 1025)) }, code: oauth.ErrInvalidRequest, reason: "state_too_long"},
		{name: "relative resource", mod: func(q url.Values) { q.Set("resource", "/api") }, code: oauth.ErrInvalidTarget, reason: "resource_malformed"},
		{name: "resource fragment", mod: func(q url.Values) { q.Set("resource", "https://api.example/#x") }, code: oauth.ErrInvalidTarget, reason: "resource_malformed"},
		{name: "actor with space", mod: func(q url.Values) { q.Set("requested_actor", "agent:a b") }, code: oauth.ErrInvalidRequest, reason: "requested_actor_malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Parse(request(c.mod), lookup, nil)
			var pe *PageError
			switch {
			case c.page != "":
				if !errors.As(err, &pe) || pe.Reason != c.page {
					t.Fatalf("err = %v, want a page error %s", err, c.page)
				}
			case c.code != "":
				e, ok := err.(*oauth.Error)
				if !ok || e.Code != c.code || e.Reason != c.reason {
					t.Fatalf("err = %v, want %s/%s", err, c.code, c.reason)
				}
				if c.reason != "state_too_long" && r.State != request(c.mod).Get("state") {
					t.Fatalf("state %q not kept for the redirect", r.State)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(r.Scopes, " ") != "deploy:create monitoring:read" || r.Actor() != "agent:infrabot" {
					t.Fatalf("request = %+v", r)
				}
			}
		})
	}
}

// TestT38PKCEVerifier: the verifier's length and characters, and a
// mismatch, are invalid_grant.
func TestT38PKCEVerifier(t *testing.T) {
	good := strings.Repeat("a", 43)
	cases := []struct {
		name, verifier, reason string
	}{
		{"match", good, ""},
		{"128 chars", strings.Repeat("b", 128), "pkce_verifier_mismatch"},
		{"42 chars", strings.Repeat("a", 42), "pkce_verifier_malformed"},
		{"129 chars", strings.Repeat("a", 129), "pkce_verifier_malformed"},
		{"bad charset", strings.Repeat("a", 42) + "+", "pkce_verifier_malformed"},
		{"mismatch", strings.Repeat("c", 43), "pkce_verifier_mismatch"},
		{"empty (downgrade)", "", "pkce_verifier_malformed"},
	}
	for _, c := range cases {
		err := CheckVerifier(challengeOf(good), c.verifier)
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		e, ok := err.(*oauth.Error)
		if !ok || e.Code != oauth.ErrInvalidGrant || e.Reason != c.reason {
			t.Errorf("%s: err = %v, want invalid_grant/%s", c.name, err, c.reason)
		}
	}
}

func TestRedirectKeepsRegisteredQuery(t *testing.T) {
	got := Redirect("http://[::1]:9999/cb?x=1", url.Values{"code": {"c"}, "state": {"a&b"}, "iss": {"https://mandate.example"}})
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("x") != "1" || q.Get("code") != "c" || q.Get("state") != "a&b" || q.Get("iss") != "https://mandate.example" {
		t.Fatalf("redirect %s", got)
	}
}

func FuzzMatchRedirect(f *testing.F) {
	for _, s := range []string{registered, "http://127.0.0.1:1/cb", "https://app.example/cb/../cb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, got string) {
		if MatchRedirect([]string{registered}, got) && got != registered {
			t.Fatalf("%q matched %q", got, registered)
		}
		if MatchRedirect([]string{"http://127.0.0.1:8400/cb"}, got) {
			u, err := url.Parse(got)
			if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/cb" || u.RawQuery != "" || u.User != nil {
				t.Fatalf("%q matched the loopback redirect", got)
			}
		}
	})
}

// TestClientDocumentPage: a client whose metadata document cannot be used
// is a page, never a redirect, whose text says invalid_client; its reason
// is the DocumentError's, or client_document_invalid for a bare
// ErrClientDocument.
func TestClientDocumentPage(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		err          error
	}{
		{name: "with-reason", reason: "client_document_too_large", err: &DocumentError{Reason: "client_document_too_large", Err: errors.New("6000 bytes")}},
		{name: "wrapped", reason: "client_document_address_forbidden", err: fmt.Errorf("lookup: %w", &DocumentError{Reason: "client_document_address_forbidden", Err: errors.New("10.0.0.1")})},
		{name: "bare", reason: "client_document_invalid", err: ErrClientDocument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(request(nil), func(string) (Client, error) { return Client{}, tc.err }, nil)
			var pe *PageError
			if !errors.As(err, &pe) || pe.Reason != tc.reason || pe.Code != oauth.ErrInvalidClient || pe.Err != nil {
				t.Fatalf("err = %#v, want a page error %s with code invalid_client", err, tc.reason)
			}
			if !strings.HasSuffix(pe.Text(), "(Error: invalid_client)") || strings.Contains(pe.Text(), "10.0.0.1") {
				t.Errorf("page text %q", pe.Text())
			}
		})
	}
	if !errors.Is(&DocumentError{Reason: "x"}, ErrClientDocument) {
		t.Error("a DocumentError does not match ErrClientDocument")
	}
}
