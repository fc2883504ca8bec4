package verify_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-dev/mandate/verify"
)

// recordSink keeps the records it is given.
type recordSink struct {
	mu   sync.Mutex
	recs []verify.Record
}

func (s *recordSink) Record(r verify.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
}

func (s *recordSink) all() []verify.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]verify.Record(nil), s.recs...)
}

var recordID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

func TestRecordJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  verify.Record
		want string
	}{
		{
			name: "ok/every-field",
			rec: verify.Record{
				ID: "req_0123456789abcdef0123456789abcdef", Time: epoch.UTC(),
				Action: "expense:approve", Resource: "expense/1", Result: verify.ResultRefused, Reason: "limit_exceeded",
				PerformedBy: "agent:a", OnBehalfOf: "user:sam", Chain: []string{"agent:a", "agent:b"}, Scopes: []string{"expense:approve"},
				Audience: audience, JTI: "jti-1", RequestID: "r-1",
				Attributes: map[string]string{"amount": "487.50"}, Context: map[string]any{"environment": "prod"},
			},
			want: `{"id":"req_0123456789abcdef0123456789abcdef","time":"2025-06-15T15:06:40Z","action":"expense:approve",` +
				`"resource":"expense/1","result":"refused","reason":"limit_exceeded","performed_by":"agent:a","on_behalf_of":"user:sam",` +
				`"chain":["agent:a","agent:b"],"scopes":["expense:approve"],"audience":"https://deploy.example","jti":"jti-1",` +
				`"request_id":"r-1","attributes":{"amount":"487.50"},"context":{"environment":"prod"}}`,
		},
		{
			name: "ok/refused-without-token",
			rec:  verify.Record{ID: "req_0123456789abcdef0123456789abcdef", Time: epoch.UTC(), Action: "POST", Resource: "/deploys", Result: verify.ResultRefused, Reason: "token_missing"},
			want: `{"id":"req_0123456789abcdef0123456789abcdef","time":"2025-06-15T15:06:40Z","action":"POST",` +
				`"resource":"/deploys","result":"refused","reason":"token_missing","performed_by":""}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("JSON:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestMiddlewareRecords: the sink gets one record per request, refusals
// included, with the result and reason of the Logger record and never the
// token.
func TestMiddlewareRecords(t *testing.T) {
	f := newFixture(t)
	tok := f.token(claims())
	granted := verify.Record{
		Action: "deploy:create", Resource: "service/api", Result: verify.ResultGranted,
		PerformedBy: "agent:argocd", OnBehalfOf: "user:sam", Chain: []string{"agent:argocd", "agent:infrabot"},
		Scopes: []string{"deploy:create", "monitoring:read"}, Audience: audience, JTI: "jti-1",
		Context: map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
	}
	refusedToken := func(reason string) verify.Record {
		return verify.Record{Action: "POST", Resource: "/deploys", Result: verify.ResultRefused, Reason: reason, Audience: audience}
	}
	withRequestID := func(r *http.Request, id string) *http.Request {
		r.Header.Set("X-Request-Id", id)
		return r
	}
	deploy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.SetAction(r.Context(), "deploy:create", "service/api")
		verify.Attribute(r.Context(), "service", "api")
	})
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.Attribute(r.Context(), "amount", "487.50")
		verify.Refused(r.Context(), "limit_exceeded")
		w.WriteHeader(http.StatusForbidden)
	})
	for _, tc := range []struct {
		name    string
		edit    func(*verify.Config)
		handler http.Handler
		r       *http.Request
		status  int
		want    verify.Record
	}{
		{
			name: "ok/granted", handler: deploy, r: withRequestID(request(tok), "trace-7f3a"), status: 200,
			want: func() verify.Record {
				r := granted
				r.RequestID, r.Attributes = "trace-7f3a", map[string]string{"service": "api"}
				return r
			}(),
		},
		{
			name: "ok/refused-by-handler", handler: refuse, r: request(tok), status: 403,
			want: func() verify.Record {
				r := granted
				r.Action, r.Resource, r.Result, r.Reason = "POST", "/deploys", verify.ResultRefused, "limit_exceeded"
				r.Attributes = map[string]string{"amount": "487.50"}
				return r
			}(),
		},
		{
			name: "fail/insufficient-scope", handler: verify.RequireScope("deploy:delete").Then(deploy), r: request(tok), status: 403,
			want: func() verify.Record {
				r := granted
				r.Action, r.Resource, r.Result, r.Reason = "POST", "/deploys", verify.ResultRefused, "insufficient_scope"
				return r
			}(),
		},
		{name: "fail/no-token", handler: deploy, r: request(""), status: 401, want: refusedToken("token_missing")},
		{name: "fail/bad-token", handler: deploy, r: request("garbage." + tok), status: 401, want: refusedToken("token_malformed")},
		{
			name: "fail/expired", handler: deploy, status: 401, want: refusedToken("token_expired"),
			r: request(f.token(with(claims(), "exp", epoch.Add(-2*time.Hour).Unix(), "iat", epoch.Add(-2*time.Hour-time.Minute).Unix(), "nbf", remove))),
		},
		{
			name: "fail/keys-unavailable", edit: func(c *verify.Config) { c.Keys = failingKeys{} }, handler: deploy, r: request(tok), status: 503,
			want: func() verify.Record {
				r := refusedToken("key_unavailable")
				r.Result = verify.ResultFailed
				return r
			}(),
		},
		{name: "fail/request-id-too-long", handler: deploy, r: withRequestID(request(""), strings.Repeat("a", 129)), status: 401, want: refusedToken("token_missing")},
		{name: "fail/request-id-not-printable", handler: deploy, r: withRequestID(request(""), "a\x01b"), status: 401, want: refusedToken("token_missing")},
		{
			name: "ok/request-id-128", handler: deploy, r: withRequestID(request(""), strings.Repeat("a", 128)), status: 401,
			want: func() verify.Record {
				r := refusedToken("token_missing")
				r.RequestID = strings.Repeat("a", 128)
				return r
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordSink{}
			v := f.verifier(t, func(c *verify.Config) {
				c.Records = sink
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			w := httptest.NewRecorder()
			v.Middleware(tc.handler).ServeHTTP(w, tc.r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d", w.Code, tc.status)
			}
			recs := sink.all()
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			got := recs[0]
			if !recordID.MatchString(got.ID) {
				t.Errorf("id = %q, want req_ and 32 lowercase hex digits", got.ID)
			}
			if !got.Time.Equal(epoch) || got.Time.Location() != time.UTC {
				t.Errorf("time = %v, want %v in UTC", got.Time, epoch)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(verify.Record{}, "ID", "Time"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			b, _ := json.Marshal(got)
			if strings.Contains(string(b), strings.Split(tok, ".")[2]) || strings.Contains(string(b), strings.Split(tok, ".")[1]) {
				t.Error("the record holds the token")
			}
		})
	}
}

// TestRecordIDsAreUnique: one id per request, never reused.
func TestRecordIDsAreUnique(t *testing.T) {
	f := newFixture(t)
	sink := &recordSink{}
	h := f.verifier(t, func(c *verify.Config) { c.Records = sink }).Middleware(ok)
	for range 100 {
		h.ServeHTTP(httptest.NewRecorder(), request(""))
	}
	seen := make(map[string]bool)
	for _, r := range sink.all() {
		if seen[r.ID] || !recordID.MatchString(r.ID) {
			t.Fatalf("id %q repeated or malformed", r.ID)
		}
		seen[r.ID] = true
	}
}

func TestAttributeBounds(t *testing.T) {
	f := newFixture(t)
	long := func(n int) string { return strings.Repeat("k", n) }
	many := map[string]string{}
	for i := range 16 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		set  func(r *http.Request)
		want map[string]string
	}{
		{name: "ok/one", set: func(r *http.Request) { verify.Attribute(r.Context(), "amount", "487.50") }, want: map[string]string{"amount": "487.50"}},
		{name: "ok/none", set: func(*http.Request) {}, want: nil},
		{
			name: "ok/replaced", want: map[string]string{"amount": "2"},
			set: func(r *http.Request) {
				verify.Attribute(r.Context(), "amount", "1")
				verify.Attribute(r.Context(), "amount", "2")
			},
		},
		{
			name: "ok/sixteen-then-ignored", want: many,
			set: func(r *http.Request) {
				for i := range 20 {
					verify.Attribute(r.Context(), fmt.Sprintf("k%02d", i), "v")
				}
			},
		},
		{
			name: "ok/replace-when-full", want: func() map[string]string {
				m := map[string]string{}
				for k, v := range many {
					m[k] = v
				}
				m["k00"] = "w"
				return m
			}(),
			set: func(r *http.Request) {
				for i := range 16 {
					verify.Attribute(r.Context(), fmt.Sprintf("k%02d", i), "v")
				}
				verify.Attribute(r.Context(), "k00", "w")
			},
		},
		{name: "ok/key-64", set: func(r *http.Request) { verify.Attribute(r.Context(), long(64), "v") }, want: map[string]string{long(64): "v"}},
		{name: "fail/key-65-ignored", set: func(r *http.Request) { verify.Attribute(r.Context(), long(65), "v") }, want: nil},
		{name: "fail/empty-key-ignored", set: func(r *http.Request) { verify.Attribute(r.Context(), "", "v") }, want: nil},
		{name: "ok/value-256", set: func(r *http.Request) { verify.Attribute(r.Context(), "k", long(256)) }, want: map[string]string{"k": long(256)}},
		{name: "ok/value-cut-to-256", set: func(r *http.Request) { verify.Attribute(r.Context(), "k", long(300)) }, want: map[string]string{"k": long(256)}},
		{
			name: "ok/value-cut-at-a-rune", want: map[string]string{"k": long(254)},
			set: func(r *http.Request) { verify.Attribute(r.Context(), "k", long(254)+"€") }, // € is 3 bytes: 257
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordSink{}
			v := f.verifier(t, func(c *verify.Config) { c.Records = sink })
			v.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { tc.set(r) })).ServeHTTP(httptest.NewRecorder(), request(f.token(claims())))
			recs := sink.all()
			if len(recs) != 1 {
				t.Fatalf("got %d records", len(recs))
			}
			if diff := cmp.Diff(tc.want, recs[0].Attributes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ok/outside-middleware", func(t *testing.T) {
		verify.Attribute(t.Context(), "k", "v") // does nothing, does not panic
	})
}

// TestAttributeAfterHandlerIgnored: a goroutine the handler left behind
// cannot change a record already handed to the sink.
func TestAttributeAfterHandlerIgnored(t *testing.T) {
	f := newFixture(t)
	sink := &recordSink{}
	var late sync.WaitGroup
	late.Add(1)
	release := make(chan struct{})
	v := f.verifier(t, func(c *verify.Config) { c.Records = sink })
	v.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		verify.Attribute(r.Context(), "a", "1")
		go func() {
			defer late.Done()
			<-release
			verify.Attribute(r.Context(), "b", "2")
			verify.SetAction(r.Context(), "late", "late")
			verify.Refused(r.Context(), "late")
		}()
	})).ServeHTTP(httptest.NewRecorder(), request(f.token(claims())))
	close(release)
	late.Wait()
	got := sink.all()[0]
	if diff := cmp.Diff(map[string]string{"a": "1"}, got.Attributes); diff != "" || got.Action != "POST" || got.Result != verify.ResultGranted {
		t.Errorf("record changed after the handler returned: %+v", got)
	}
}

// TestAttributesLogged: the Logger record carries the attributes too.
func TestAttributesLogged(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	v := f.verifier(t, func(c *verify.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime}))
	})
	v.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		verify.Attribute(r.Context(), "amount", "487.50")
		verify.Attribute(r.Context(), "currency", "USD")
	})).ServeHTTP(httptest.NewRecorder(), request(f.token(claims())))
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"amount": "487.50", "currency": "USD"}, got["attributes"]); diff != "" {
		t.Errorf("logged attributes (-want +got):\n%s", diff)
	}
}
