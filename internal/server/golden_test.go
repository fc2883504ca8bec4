package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/golden"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// The golden tests compare what Mandate puts on the wire with the reviewed
// files under testdata/golden/, so that the wire changes only by a diff
// someone read. Everything comes from a real server over real HTTP with
// real signatures; the files are written by
//
//	go test ./internal/server -run Golden -update
//
// and reviewed. What differs from run to run is replaced by a fixed
// placeholder before comparing (goldenRedact): the issuer's and the IdP's
// URLs (their ports), key ids, jti and other random identifiers by name,
// and times, hashes and public keys wherever they occur.

// goldenFile is the path of a golden file of this package.
func goldenFile(name string) string { return "testdata/golden/" + name + ".json" }

// goldenNames maps values that differ from run to run to their fixed
// placeholders: the URLs with ports, the signing key's id and the
// provisioned delegations' ids. Tests add the jti and ids they create.
func (h *harness) goldenNames() map[string]string {
	h.t.Helper()
	names := map[string]string{
		h.url:                  "<issuer>",
		h.idp.srv.URL:          "<idp>",
		h.app.Keys.ActiveKID(): "<kid>",
	}
	r := h.admin(http.MethodGet, "/admin/delegations", nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("list delegations: %d %s", r.status, r.raw)
	}
	for _, d := range r.body["delegations"].([]any) {
		d := d.(map[string]any)
		names[d["id"].(string)] = "<delegation:" + d["subject"].(string) + ":" + d["actor"].(string) + ">"
	}
	return names
}

// goldenRedact is the Redact of the golden tests: names by placeholder,
// and by member the values that differ on every run (times and the ends
// of lifetimes, and gen: the store generation the grant was decided at,
// which counts the writes before it) and the members listed in more.
func goldenRedact(names map[string]string, more ...string) golden.Redact {
	varying := []string{"iat", "nbf", "exp", "time", "until", "created_at", "updated_at", "expires_at", "issued_at", "gen"}
	return golden.Redact{Members: append(varying, more...), Strings: names}
}

// wire is an HTTP answer as a golden file holds it: the status, the
// headers that are part of the contract, and the body.
func wire(r response, headers ...string) map[string]any {
	out := map[string]any{"status": r.status}
	hs := map[string]any{}
	for _, k := range headers {
		if v := r.header.Values(k); len(v) > 0 {
			hs[k] = strings.Join(v, ", ")
		}
	}
	if len(hs) > 0 {
		out["headers"] = hs
	}
	out["body"] = json.RawMessage(r.raw)
	return out
}

// jwsHeader decodes a compact JWS's protected header (test inspection only).
func jwsHeader(t *testing.T, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr
}

// TestGoldenTokens: the /token answer and the access token (header and
// claims) of a first hop (InfraBot for Sam, to ArgoCD) and a second
// (ArgoCD onward to the cleanup agent); introspection of the second hop,
// active and then inactive; and the error answers of /token.
func TestGoldenTokens(t *testing.T) {
	// A stopped clock, so that expires_in is the configured lifetime and
	// not a second less when the request straddles one.
	now := time.Now().Truncate(time.Second)
	h := newHarnessOn(t, openSQLite, func() time.Time { return now })
	names := h.goldenNames()
	hop1 := h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
		url.Values{"audience": {"agent:argocd"}, "scope": {"monitoring:read deploy:tag"}})
	if hop1.status != http.StatusOK {
		t.Fatalf("hop 1: %d %s", hop1.status, hop1.raw)
	}
	tok1 := hop1.str("access_token")
	hop2 := h.exchange("agent:argocd", tok1, oauth.TokenTypeAccessToken,
		url.Values{"audience": {"agent:cleanup_agent"}, "scope": {"deploy:tag"}})
	if hop2.status != http.StatusOK {
		t.Fatalf("hop 2: %d %s", hop2.status, hop2.raw)
	}
	tok2 := hop2.str("access_token")
	names[jtiOf(t, tok1)] = "<jti:hop1>"
	names[jtiOf(t, tok2)] = "<jti:hop2>"
	names[tok1] = "<access_token:hop1>"
	names[tok2] = "<access_token:hop2>"
	red := goldenRedact(names)

	golden.CompareJSON(t, goldenFile("token_response_hop1"), wire(hop1, "Content-Type", "Cache-Control", "Pragma"), red)
	golden.CompareJSON(t, goldenFile("token_response_hop2"), wire(hop2, "Content-Type", "Cache-Control", "Pragma"), red)
	for name, tok := range map[string]string{"hop1": tok1, "hop2": tok2} {
		golden.CompareJSON(t, goldenFile("access_token_"+name), map[string]any{
			"header": jwsHeader(t, tok), "claims": claims(t, tok),
		}, red)
	}

	introspect := func() response {
		r := h.post("/introspect", "agent:argocd", url.Values{"token": {tok2}})
		if r.status != http.StatusOK {
			t.Fatalf("introspect: %d %s", r.status, r.raw)
		}
		return r
	}
	golden.CompareJSON(t, goldenFile("introspection_active"), wire(introspect(), "Content-Type", "Cache-Control"), red)
	if r := h.post("/revoke", "agent:argocd", url.Values{"token": {tok2}}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	golden.CompareJSON(t, goldenFile("introspection_inactive"), wire(introspect(), "Content-Type", "Cache-Control"), red)

	errors := []struct {
		name string
		do   func() response
	}{
		{name: "no_delegation", do: func() response {
			// Mallory holds no delegation from Sam: RFC 8693 §2.2.2.
			return h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, url.Values{"scope": {"monitoring:read"}})
		}},
		{name: "bad_client_secret", do: func() response {
			return h.postAs("/token", "agent:infrabot", "wrong-secret", url.Values{"grant_type": {oauth.GrantClientCredentials}}, nil)
		}},
		{name: "unsupported_grant_type", do: func() response {
			return h.post("/token", "agent:infrabot", url.Values{"grant_type": {"password"}})
		}},
	}
	for _, e := range errors {
		golden.CompareJSON(t, goldenFile("token_error_"+e.name), wire(e.do(), "Content-Type", "Cache-Control", "WWW-Authenticate"), red)
	}
}

// TestGoldenDiscovery: the RFC 8414 and OpenID discovery documents and the
// JWKS, its public keys replaced by placeholders.
func TestGoldenDiscovery(t *testing.T) {
	h := newHarness(t)
	red := goldenRedact(h.goldenNames(), "x", "y", "n", "e")
	for path, name := range map[string]string{
		"/.well-known/oauth-authorization-server": "oauth_authorization_server",
		"/.well-known/openid-configuration":       "openid_configuration",
		"/jwks":                                   "jwks",
	} {
		r := h.do(mustRequest(t, h.url+path))
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
		golden.CompareJSON(t, goldenFile(name), wire(r, "Content-Type", "Cache-Control"), red)
	}
}

// sseJSON is a Server-Sent Event as a golden file holds it.
func sseJSON(ev sseEvent) map[string]any {
	return map[string]any{"event": ev.name, "id": ev.id, "data": json.RawMessage(ev.data)}
}

// TestGoldenRevocationFeed: a revocation feed event of each kind as a
// subscriber of /revocations/stream receives it, the snapshot a new
// subscriber then starts from, and the same entries as Security Event
// Tokens from POST /revocations/sets (the poll answer, and each SET's
// header and claims, its signature checked against the JWKS).
func TestGoldenRevocationFeed(t *testing.T) {
	// A clock the test moves, so that a rotated-in key can take over
	// signing before the old one is revoked.
	h, advance := newClockedHarness(t, openSQLite)
	names := h.goldenNames()
	red := goldenRedact(names, "event_timestamp")
	sub := h.subscribe("rs:deploy", "")
	names[sub.snapshot().Stream] = "<stream>"
	kid := h.app.Keys.ActiveKID()
	kinds := []struct {
		name   string
		revoke func()
	}{
		{name: "token", revoke: func() {
			jti := jtiOf(t, h.hop1("monitoring:read"))
			names[jti] = "<jti>"
			h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": jti})
		}},
		{name: "subject", revoke: func() {
			h.admin(http.MethodPost, "/admin/revoke", map[string]string{"subject": "user:alex"})
		}},
		{name: "scope", revoke: func() {
			h.admin(http.MethodPut, "/admin/users/user:sam/permissions", map[string]any{"permissions": []string{"deploy:create", "secrets:manage", "deploy:tag"}})
		}},
		{name: "agent", revoke: func() {
			h.admin(http.MethodPost, "/admin/agents/agent:cleanup_agent/disable", nil)
		}},
		{name: "delegation", revoke: func() {
			r := h.admin(http.MethodGet, "/admin/delegations?subject=user:alice", nil)
			id := r.body["delegations"].([]any)[0].(map[string]any)["id"].(string)
			if r := h.admin(http.MethodDelete, "/admin/delegations/"+id, nil); r.status != http.StatusOK {
				t.Fatalf("delete delegation: %d %s", r.status, r.raw)
			}
		}},
		{name: "key", revoke: func() {
			next, err := h.app.Keys.Rotate(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			names[next.KID] = "<kid:next>"
			advance(config.DefaultKeyPublishDelay + time.Second)
			if err := h.app.Keys.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := h.app.Keys.RevokeKey(t.Context(), kid); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, k := range kinds {
		k.revoke()
		golden.CompareJSON(t, goldenFile("feed_event_"+k.name), sseJSON(sub.next()), red)
	}
	// A new subscriber starts from a snapshot of everything in force.
	golden.CompareJSON(t, goldenFile("feed_event_snapshot"), sseJSON(h.subscribe("rs:reporter", "").next()), red)

	var r response
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/revocations/sets", strings.NewReader(`{"returnImmediately":true}`))
		req.SetBasicAuth("rs%3Adeploy", "rs-deploy-secret")
		req.Header.Set("Content-Type", "application/json")
		if r = h.do(req); r.status != http.StatusOK {
			t.Fatalf("poll: %d %s", r.status, r.raw)
		}
		if sets, _ := r.body["sets"].(map[string]any); len(sets) >= len(kinds) || time.Now().After(deadline) {
			break
		}
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(h.do(mustRequest(t, h.url+"/jwks")).raw), &jwks); err != nil {
		t.Fatal(err)
	}
	sets := r.body["sets"].(map[string]any)
	if len(sets) != len(kinds) {
		t.Fatalf("%d SETs, want %d: %s", len(sets), len(kinds), r.raw)
	}
	var decoded []any
	for _, id := range slices.Sorted(maps.Keys(sets)) {
		raw := sets[id].(string)
		names[raw] = "<SET>"
		obj, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		keys := jwks.Key(obj.Signatures[0].Protected.KeyID)
		if len(keys) != 1 {
			t.Fatalf("SET %s signed by a key the JWKS lacks", id)
		}
		payload, err := obj.Verify(keys[0])
		if err != nil {
			t.Fatal(err)
		}
		decoded = append(decoded, map[string]any{"header": jwsHeader(t, raw), "claims": json.RawMessage(payload)})
	}
	golden.CompareJSON(t, goldenFile("security_event_poll"), wire(r, "Content-Type", "Cache-Control"), red)
	golden.CompareJSON(t, goldenFile("security_event_tokens"), decoded, red)
}

// TestGoldenAudit: an audit record of each main action as
// `mandate audit export` writes it, and GET /audit answers the same: a
// token exchange granted and one refused, a revocation, an admin change,
// and a verifier's request record ingested through /audit/ingest.
func TestGoldenAudit(t *testing.T) {
	h := newHarness(t)
	names := h.goldenNames()
	// The chain hash covers the record's time, so it differs on every run.
	red := goldenRedact(names, "hash")
	before := h.lastSeq()
	tok := h.hop1("monitoring:read")
	names[jtiOf(t, tok)] = "<jti>"
	if r := h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken, url.Values{"scope": {"monitoring:read"}}); r.status != http.StatusBadRequest {
		t.Fatalf("mallory's exchange: %d %s", r.status, r.raw)
	}
	if r := h.admin(http.MethodPost, "/admin/revoke", map[string]string{"jti": jtiOf(t, tok)}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := h.admin(http.MethodPut, "/admin/users/user:alex/permissions", map[string]any{"permissions": []string{"monitoring:read", "deploy:tag"}}); r.status != http.StatusOK {
		t.Fatalf("permissions: %d %s", r.status, r.raw)
	}
	h.ingestOK("rs:reporter", "rs-reporter-secret", map[string]any{"records": []any{ingestRecord(1, time.Now())}})

	files := map[string]string{
		audit.ActionTokenExchange:   "audit_token_exchange",
		audit.ActionTokenRefused:    "audit_token_refused",
		audit.ActionTokenRevoked:    "audit_token_revoked",
		audit.ActionUserPermissions: "audit_user_permissions",
		audit.ActionRequest:         "audit_request_ingested",
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(h.mandate("audit", "export")), "\n") {
		var ev store.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		file, ok := files[ev.Action]
		if ev.Seq <= before || !ok {
			continue
		}
		seen[ev.Action] = true
		// The server's record and request ids are random; an ingested
		// record keeps the ids its verifier gave it.
		if ev.Action != audit.ActionRequest {
			names[ev.ID], names[ev.RequestID] = "<record-id:"+ev.Action+">", "<request-id:"+ev.Action+">"
		}
		golden.CompareJSON(t, goldenFile(file), json.RawMessage(line), red)
		q := h.admin(http.MethodGet, "/audit?limit=1&action="+url.QueryEscape(ev.Action), nil)
		got, _ := q.body["events"].([]any)
		if len(got) != 1 {
			t.Fatalf("GET /audit?action=%s: %d %s", ev.Action, q.status, q.raw)
		}
		a, errA := golden.JSON(got[0], golden.Redact{})
		b, errB := golden.JSON(line, golden.Redact{})
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("GET /audit?action=%s = %s, want the exported record %s", ev.Action, a, b)
		}
	}
	for action := range files {
		if !seen[action] {
			t.Errorf("no %s record exported", action)
		}
	}
}
