package verify

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/jwt"
	"github.com/mandate-dev/mandate/oauth"
)

// Audit results, as in Mandate's own audit log.
const (
	ResultGranted = "granted"
	ResultRefused = "refused"
	ResultFailed  = "failed"
)

// requestState is what Middleware puts in the request context: the
// principal and the audit record the wrappers and handler add to.
type requestState struct {
	v         *Verifier
	principal *Principal
	// mu guards record and done: SetAction, Refused and Attribute may be
	// called from goroutines the handler starts.
	mu     sync.Mutex
	record auditRecord
	// done is set when the record is taken, after the handler returns;
	// later changes are ignored, as the record may be in a sink's hands.
	done bool
}

type stateKey struct{}

// auditRecord is the one record logged per request.
type auditRecord struct {
	action, resource, result, reason string
	attrs                            map[string]string // Attribute
}

// set records the result and reason unless the record was taken.
func (st *requestState) set(result, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.done {
		st.record.result, st.record.reason = result, reason
	}
}

// FromContext returns the Principal that Middleware verified for this
// request; ok is false outside Middleware.
func FromContext(ctx context.Context) (*Principal, bool) {
	st, ok := ctx.Value(stateKey{}).(*requestState)
	if !ok || st.principal == nil {
		return nil, false
	}
	return st.principal, true
}

// SetAction names the action and resource of the current request in its
// audit record (default: the method and the URL path), for example
// SetAction(ctx, "deploy:create", "service/api"). It does nothing outside
// Middleware or after the handler has returned.
func SetAction(ctx context.Context, action, resource string) {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !st.done {
			st.record.action, st.record.resource = action, resource
		}
	}
}

// Refused records in the current request's audit record that the handler
// itself refused the request, with a machine-readable reason such as
// "limit_exceeded"; the handler still writes its own answer. It does nothing
// outside Middleware or after the handler has returned.
func Refused(ctx context.Context, reason string) {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		st.set(ResultRefused, reason)
	}
}

// Middleware verifies the bearer token of every request before next runs,
// and puts the Principal in the request context (FromContext). It reads
// only the Authorization header (RFC 6750 §2.1; scheme case-insensitive);
// a token in the query string, or two Authorization headers, is refused
// with 400 invalid_request. An invalid token is answered 401 invalid_token
// with WWW-Authenticate naming the resource metadata (RFC 9728 §5.1); keys
// or revocation state that cannot be known are answered 503 with
// Retry-After, never 401 and never allowed. Bodies are JSON with
// Cache-Control: no-store, and their text never repeats the request. One
// audit record per request goes to Config.Logger and Config.Records after
// next returns, refusals included.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var start time.Time
		if v.cfg.Records != nil {
			start = v.cfg.Now()
		}
		st := &requestState{v: v, record: auditRecord{action: r.Method, resource: r.URL.Path}}
		raw, err := bearerToken(r)
		if err == nil {
			st.principal, err = v.Verify(r.Context(), raw)
		}
		if err != nil {
			ref := refusalFor(err)
			st.record.result, st.record.reason = ResultRefused, ref.reason
			if ref.status == http.StatusServiceUnavailable {
				st.record.result = ResultFailed
			}
			scope := ""
			if ref.status == http.StatusUnauthorized {
				// RFC 6750 §3: the scopes to ask for, so that a client
				// signing in asks for what this resource needs.
				scope = v.requestScope
			}
			v.writeRefusal(w, ref, scope, errors.Is(err, ErrNoToken))
			v.audit(r, st, start)
			return
		}
		st.record.result = ResultGranted
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
		v.audit(r, st, start)
	})
}

// bearerToken extracts the token per RFC 6750 §2.1 and §3.1.
func bearerToken(r *http.Request) (string, error) {
	if r.URL.Query().Has("access_token") {
		return "", ErrBadRequest
	}
	h := r.Header.Values("Authorization")
	switch {
	case len(h) == 0:
		return "", ErrNoToken
	case len(h) > 1:
		return "", ErrBadRequest
	}
	scheme, token, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", ErrNoToken
	}
	if len(token) > jwt.MaxTokenSize {
		return "", ErrMalformed
	}
	return token, nil
}

// writeRefusal answers with ref. scope names the missing scopes of an
// insufficient_scope refusal; bare omits the error code from
// WWW-Authenticate, as RFC 6750 §3.1 asks when no token was sent.
func (v *Verifier) writeRefusal(w http.ResponseWriter, ref refusal, scope string, bare bool) {
	h := w.Header()
	switch ref.status {
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(int(RetryAfter.Seconds())))
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		h.Set("WWW-Authenticate", v.challenge(ref, scope, bare))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(ref.status)
	body, _ := json.Marshal(struct {
		Error       oauth.ErrorCode `json:"error"`
		Description string          `json:"error_description"`
		Scope       string          `json:"scope,omitempty"`
	}{ref.code, ref.description, scope})
	_, _ = w.Write(body)
}

// challenge builds the WWW-Authenticate value (RFC 6750 §3, RFC 9728
// §5.1). Every value in it is fixed text or configuration, never input.
func (v *Verifier) challenge(ref refusal, scope string, bare bool) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(name, value string) {
		b.WriteString(sep + name + `="` + value + `"`)
		sep = ", "
	}
	if !bare && ref.code != oauth.ErrAccessDenied {
		param("error", string(ref.code))
		param("error_description", ref.description)
	}
	if scope != "" {
		param("scope", scope)
	}
	if u := v.cfg.Resource.MetadataURL; u != "" {
		param("resource_metadata", u)
	}
	return b.String()
}

// audit takes the request's record, logs it at Info (granted) or Warn
// (refused or failed), and hands it to Config.Records. The token is never
// logged; the chain, scopes and context are the verified ones.
func (v *Verifier) audit(r *http.Request, st *requestState, start time.Time) {
	st.mu.Lock()
	st.done = true
	rec := st.record
	st.mu.Unlock()
	v.log(r.Context(), st.principal, rec)
	if v.cfg.Records != nil {
		v.cfg.Records.Record(v.newRecord(r, st.principal, rec, start))
	}
}

// log writes rec to Config.Logger.
func (v *Verifier) log(ctx context.Context, p *Principal, rec auditRecord) {
	if v.cfg.Logger == nil {
		return
	}
	level := slog.LevelInfo
	if rec.result != ResultGranted {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 11)
	if p != nil {
		attrs = append(attrs,
			slog.String("performed_by", p.PerformedBy()),
			slog.String("on_behalf_of", p.OnBehalfOf()),
			slog.Any("chain", p.Chain),
			slog.Any("scopes", p.Scopes),
			slog.Any("context", map[string]any(p.Context)),
		)
	}
	attrs = append(attrs,
		slog.String("action", rec.action),
		slog.String("resource", rec.resource),
		slog.String("result", rec.result),
		slog.String("reason", rec.reason),
	)
	if p != nil {
		attrs = append(attrs, slog.String("jti", p.JTI))
	}
	if len(rec.attrs) > 0 {
		attrs = append(attrs, slog.Any("attributes", rec.attrs))
	}
	v.cfg.Logger.LogAttrs(ctx, level, "verify", attrs...)
}

// Rule is a check a route adds after Middleware, as a wrapper:
// RequireScope, RequireAnyScope, AllowActors, DenyActors, MaxDepth and
// RequireContext return one. A Rule refuses with 403 (insufficient_scope
// for scopes, access_denied for the rest) and records the reason in the
// request's audit record. Outside Middleware it refuses with 500: a route
// wired without Middleware fails closed.
type Rule func(http.Handler) http.Handler

// Then applies the rules to h, the first rule outermost: verify.RequireScope
// ("a").Then(h) or Chain(RequireScope("a"), DenyActors("x")).Then(h).
func (r Rule) Then(h http.Handler) http.Handler { return r(h) }

// Chain combines rules into one, applied in order.
func Chain(rules ...Rule) Rule {
	return func(h http.Handler) http.Handler {
		for _, rule := range slices.Backward(rules) {
			h = rule(h)
		}
		return h
	}
}

// rule builds a Rule from a check that returns the refusal, if any.
func rule(check func(p *Principal) (ref refusal, scope string, refused bool)) Rule {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, ok := r.Context().Value(stateKey{}).(*requestState)
			if !ok || st.principal == nil {
				writeJSONError(w, http.StatusInternalServerError, oauth.ErrServerError, "the request was not verified")
				return
			}
			ref, scope, refused := check(st.principal)
			if !refused {
				next.ServeHTTP(w, r)
				return
			}
			st.set(ResultRefused, ref.reason)
			st.v.writeRefusal(w, ref, scope, false)
		})
	}
}
