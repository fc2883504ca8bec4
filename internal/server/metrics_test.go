package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// series is a scrape of GET /metrics: every sample under its name and its
// labels (series keys). A histogram gives name_count and name_bucket (with
// le) samples.
type series map[string]float64

// key names a sample: name{k1="v1",k2="v2"} with the labels in name order;
// labels are alternating names and values.
func key(name string, labels ...string) string {
	pairs := make([]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// scrape reads GET /metrics.
func (h *harness) scrape() series {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	r := h.do(req)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET /metrics: %d", r.status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(r.raw))
	if err != nil {
		h.t.Fatalf("GET /metrics: %v", err)
	}
	out := series{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName(), l.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				out[key(name, labels...)] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key(name, labels...)] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				hist := m.GetHistogram()
				out[key(name+"_count", labels...)] = float64(hist.GetSampleCount())
				for _, b := range hist.GetBucket() {
					le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
					out[key(name+"_bucket", append(slices.Clip(labels), "le", le)...)] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// labelValues returns every label value in the scrape.
func (s series) labelValues() []string {
	var out []string
	for k := range s {
		out = append(out, k[strings.IndexByte(k, '{'):])
	}
	return out
}

// TestMetrics: each request moves exactly the labelled series it should,
// and a made-up client id never becomes a label value.
func TestMetrics(t *testing.T) {
	const madeUp = "agent:made-up-0f3c"
	var (
		exchangeGrant = oauth.GrantTokenExchange
		ccGrant       = oauth.GrantClientCredentials
		issued        = func(agent, grant string) string {
			return key("mandate_tokens_issued_total", "agent", agent, "grant", grant)
		}
		refused = func(agent, reason string) string {
			return key("mandate_tokens_refused_total", "agent", agent, "reason", reason)
		}
		revoked  = func(agent string) string { return key("mandate_tokens_revoked_total", "agent", agent) }
		duration = func(grant string) string {
			return key("mandate_token_request_duration_seconds_count", "grant", grant)
		}
		depthCount = key("mandate_delegation_chain_depth_count")
		depthLE    = func(le string) string { return key("mandate_delegation_chain_depth_bucket", "le", le) }
		records    = key("mandate_audit_records_total")
		commits    = key("mandate_audit_commit_duration_seconds_count")
		failures   = key("mandate_audit_commit_failures_total")
		oldFailure = key("mandate_audit_failures_total")
	)
	type metricCase struct {
		name string
		// prepare runs before the first scrape and returns a token for do.
		prepare func(t *testing.T, h *harness) string
		do      func(t *testing.T, h *harness, tok string)
		// want is the change of each listed series (0: must not move).
		want map[string]float64
	}
	wantStatus := func(t *testing.T, r response, status int) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
		}
	}
	hop1 := func(t *testing.T, h *harness) string { return h.hop1("deploy:create") }
	argo := func(t *testing.T, h *harness) string { tok, _ := h.argoToken("deploy:create"); return tok }
	tests := []metricCase{
		{
			name: "ok/exchange-first-hop",
			do: func(t *testing.T, h *harness, _ string) {
				wantStatus(t, h.exchange("agent:infrabot", h.samToken(), oauth.TokenTypeIDToken,
					url.Values{"audience": {"agent:argocd"}, "agent_version": {"1.4.2"}}), http.StatusOK)
			},
			want: map[string]float64{
				issued("agent:infrabot", exchangeGrant): 1, duration(exchangeGrant): 1,
				depthCount: 1, depthLE("1"): 1, depthLE("2"): 1,
				records: 1, commits: 1, failures: 0,
			},
		},
		{
			name:    "ok/exchange-second-hop",
			prepare: hop1,
			do: func(t *testing.T, h *harness, tok string) {
				wantStatus(t, h.exchange("agent:argocd", tok, oauth.TokenTypeAccessToken,
					url.Values{"audience": {"https://deploy.example"}}), http.StatusOK)
			},
			want: map[string]float64{
				issued("agent:argocd", exchangeGrant): 1, issued("agent:infrabot", exchangeGrant): 0,
				depthCount: 1, depthLE("1"): 0, depthLE("2"): 1, depthLE("8"): 1,
			},
		},
		{
			name: "ok/client-credentials",
			do: func(t *testing.T, h *harness, _ string) {
				wantStatus(t, h.post("/token", "agent:infrabot", url.Values{"grant_type": {ccGrant}}), http.StatusOK)
			},
			want: map[string]float64{
				issued("agent:infrabot", ccGrant): 1, duration(ccGrant): 1, duration(exchangeGrant): 0,
				depthCount: 0, records: 1,
			},
		},
		{
			name: "fail/exchange-not-delegated",
			do: func(t *testing.T, h *harness, _ string) {
				wantStatus(t, h.exchange("agent:mallory", h.samToken(), oauth.TokenTypeIDToken,
					url.Values{"audience": {"agent:argocd"}}), http.StatusBadRequest)
			},
			want: map[string]float64{
				refused("agent:mallory", "actor_not_delegated"): 1, issued("agent:mallory", exchangeGrant): 0,
				duration(exchangeGrant): 1, depthCount: 0, records: 1,
			},
		},
		{
			name: "fail/made-up-client-id",
			do: func(t *testing.T, h *harness, _ string) {
				form := url.Values{"grant_type": {exchangeGrant}, "subject_token": {h.samToken()},
					"subject_token_type": {oauth.TokenTypeIDToken}}
				wantStatus(t, h.postAs("/token", madeUp, "guess", form, nil), http.StatusUnauthorized)
			},
			want: map[string]float64{
				refused("unauthenticated", "client_unknown"): 1, duration(exchangeGrant): 1, records: 1,
			},
		},
		{
			name: "fail/agent-version-invalid",
			do: func(t *testing.T, h *harness, _ string) {
				r := h.post("/token", "agent:infrabot", url.Values{"grant_type": {ccGrant}, "agent_version": {"1.0 beta"}})
				wantStatus(t, r, http.StatusBadRequest)
				if r.str("error") != "invalid_request" || !strings.Contains(r.str("error_description"), "agent_version") {
					t.Errorf("answer %s, want invalid_request naming agent_version", r.raw)
				}
			},
			want: map[string]float64{
				refused("agent:infrabot", "agent_version_invalid"): 1, issued("agent:infrabot", ccGrant): 0, duration(ccGrant): 1,
			},
		},
		{
			name: "fail/audit-unwritable",
			do: func(t *testing.T, h *harness, _ string) {
				h.faulty.Fail("Commit", nil)
				defer h.faulty.Heal()
				wantStatus(t, h.post("/token", "agent:infrabot", url.Values{"grant_type": {ccGrant}}), http.StatusServiceUnavailable)
			},
			want: map[string]float64{
				refused("agent:infrabot", "audit_unavailable"): 1, issued("agent:infrabot", ccGrant): 0,
				// The token's record, then the refusal's: both fail.
				failures: 2, oldFailure: 2, commits: 2, records: 0,
			},
		},
		{
			name:    "ok/revoke-own-token",
			prepare: hop1,
			do: func(t *testing.T, h *harness, tok string) {
				wantStatus(t, h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}}), http.StatusOK)
			},
			want: map[string]float64{revoked("agent:infrabot"): 1},
		},
		{
			name: "ok/revoke-again-not-counted",
			prepare: func(t *testing.T, h *harness) string {
				tok := hop1(t, h)
				wantStatus(t, h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}}), http.StatusOK)
				return tok
			},
			do: func(t *testing.T, h *harness, tok string) {
				wantStatus(t, h.post("/revoke", "agent:infrabot", url.Values{"token": {tok}}), http.StatusOK)
			},
			want: map[string]float64{revoked("agent:infrabot"): 0},
		},
		{
			name:    "fail/revoke-other-clients-token",
			prepare: hop1,
			do: func(t *testing.T, h *harness, tok string) {
				// 200 without an oracle, but nothing is revoked.
				wantStatus(t, h.post("/revoke", "agent:mallory", url.Values{"token": {tok}}), http.StatusOK)
			},
			want: map[string]float64{revoked("agent:infrabot"): 0, revoked("agent:mallory"): 0},
		},
		{
			name:    "ok/admin-revoke-jti",
			prepare: argo,
			do: func(t *testing.T, h *harness, tok string) {
				wantStatus(t, h.admin(http.MethodPost, "/admin/revoke", map[string]any{"jti": jtiOf(t, tok)}), http.StatusOK)
			},
			want: map[string]float64{revoked("agent:argocd"): 1, revoked("agent:infrabot"): 0},
		},
	}
	onEveryBackend(t, func(t *testing.T, h *harness) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var tok string
				if tc.prepare != nil {
					tok = tc.prepare(t, h)
				}
				before := h.scrape()
				tc.do(t, h, tok)
				after := h.scrape()
				got := map[string]float64{}
				for k := range tc.want {
					got[k] = after[k] - before[k]
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("metric changes (-want +got):\n%s", diff)
				}
				for _, labels := range after.labelValues() {
					if strings.Contains(labels, madeUp) {
						t.Errorf("a made-up client id became a label: %s", labels)
					}
				}
			})
		}
	})
}

// TestAgentVersionRecorded: agent_version is validated, and it and the
// authorization_details (granted, or requested on a refusal) are in every
// audit record of the token request, as the store reads them back.
func TestAgentVersionRecorded(t *testing.T) {
	const version = "2026.03.1+g3f2a9c_rc-1"
	tests := []struct {
		name string
		// client sends form to /token ("" for no client authentication).
		client string
		form   func(h *harness) url.Values
		// wantStatus and wantReason are the answer's status and the
		// request's one record (its action and reason).
		wantStatus int
		want       store.Event
	}{
		{
			name: "ok/exchange", client: "agent:infrabot", wantStatus: http.StatusOK,
			form: func(h *harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {h.samToken()},
					"subject_token_type": {oauth.TokenTypeIDToken}, "audience": {"agent:argocd"}, "agent_version": {version}}
			},
			want: store.Event{Action: audit.ActionTokenExchange, Result: audit.ResultGranted, AgentVersion: version},
		},
		{
			name: "ok/exchange-details-granted", client: "agent:expense", wantStatus: http.StatusOK,
			form: func(h *harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {h.idp.token(h.t, "user:alice", nil)},
					"subject_token_type": {oauth.TokenTypeIDToken}, "audience": {"https://expenses.example"}, "agent_version": {version},
					"authorization_details": {`[{"type":"expense_approval", "max_amount":5000, "currency":"USD"}]`}}
			},
			// Lowered to Alice's limit: what was granted, compact.
			want: store.Event{Action: audit.ActionTokenExchange, Result: audit.ResultGranted, AgentVersion: version,
				AuthorizationDetails: []byte(`[{"currency":"USD","max_amount":1000,"type":"expense_approval"}]`)},
		},
		{
			name: "ok/client-credentials-64-bytes", client: "agent:infrabot", wantStatus: http.StatusOK,
			form: func(*harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantClientCredentials}, "agent_version": {strings.Repeat("9", 64)}}
			},
			want: store.Event{Action: audit.ActionTokenIssue, Result: audit.ResultGranted, AgentVersion: strings.Repeat("9", 64)},
		},
		{
			name: "ok/no-version", client: "agent:infrabot", wantStatus: http.StatusOK,
			form: func(*harness) url.Values { return url.Values{"grant_type": {oauth.GrantClientCredentials}} },
			want: store.Event{Action: audit.ActionTokenIssue, Result: audit.ResultGranted},
		},
		{
			name: "fail/refused-by-grant", client: "agent:mallory", wantStatus: http.StatusBadRequest,
			form: func(h *harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {h.samToken()},
					"subject_token_type": {oauth.TokenTypeIDToken}, "audience": {"agent:argocd"}, "agent_version": {version}}
			},
			want: store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "actor_not_delegated", AgentVersion: version},
		},
		{
			name: "fail/details-not-held", client: "agent:expense", wantStatus: http.StatusBadRequest,
			form: func(h *harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {h.idp.token(h.t, "user:alice", nil)},
					"subject_token_type": {oauth.TokenTypeIDToken}, "audience": {"https://expenses.example"}, "agent_version": {version},
					"authorization_details": {`[{"type":"expense_approval","max_amount":10,"currency":"EUR"}]`}}
			},
			// What was requested.
			want: store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "authorization_details_not_held",
				AgentVersion: version, AuthorizationDetails: []byte(`[{"currency":"EUR","max_amount":10,"type":"expense_approval"}]`)},
		},
		{
			name: "fail/refused-before-grant", client: "agent:expense", wantStatus: http.StatusBadRequest,
			form: func(h *harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantTokenExchange}, "subject_token": {h.idp.token(h.t, "user:alice", nil)},
					"subject_token_type": {oauth.TokenTypeIDToken}, "agent_version": {version}, "context": {"[]"},
					"authorization_details": {`[{"type":"expense_approval","max_amount":10}]`}}
			},
			want: store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "context_invalid",
				AgentVersion: version, AuthorizationDetails: []byte(`[{"max_amount":10,"type":"expense_approval"}]`)},
		},
		{
			name: "fail/client-auth", client: "", wantStatus: http.StatusUnauthorized,
			form: func(*harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantClientCredentials}, "agent_version": {version},
					"client_id": {"agent:infrabot"}, "client_secret": {"wrong"}}
			},
			want: store.Event{Action: audit.ActionClientAuth, Result: audit.ResultRefused, Reason: "client_secret_mismatch", AgentVersion: version},
		},
		{
			name: "fail/version-charset", client: "agent:infrabot", wantStatus: http.StatusBadRequest,
			form: func(*harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantClientCredentials}, "agent_version": {"1.0/evil"}}
			},
			want: store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "agent_version_invalid"},
		},
		{
			name: "fail/version-too-long", client: "agent:infrabot", wantStatus: http.StatusBadRequest,
			form: func(*harness) url.Values {
				return url.Values{"grant_type": {oauth.GrantClientCredentials}, "agent_version": {strings.Repeat("9", 65)}}
			},
			want: store.Event{Action: audit.ActionTokenRefused, Result: audit.ResultRefused, Reason: "agent_version_invalid"},
		},
	}
	onEveryBackend(t, func(t *testing.T, h *harness) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := h.post("/token", tc.client, tc.form(h))
				if r.status != tc.wantStatus {
					t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.raw)
				}
				if tc.want.Reason == "agent_version_invalid" &&
					(r.str("error") != "invalid_request" || !strings.Contains(r.str("error_description"), "agent_version")) {
					t.Errorf("answer %s, want invalid_request naming agent_version", r.raw)
				}
				var got []store.Event
				for _, ev := range h.events(store.EventFilter{}) {
					if ev.RequestID == r.header.Get("X-Request-Id") {
						got = append(got, store.Event{Action: ev.Action, Result: ev.Result, Reason: ev.Reason,
							AgentVersion: ev.AgentVersion, AuthorizationDetails: ev.AuthorizationDetails})
					}
				}
				if diff := cmp.Diff([]store.Event{tc.want}, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("the request's audit records (-want +got):\n%s", diff)
				}
			})
		}
	})
}
