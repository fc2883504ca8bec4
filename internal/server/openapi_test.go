package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/internal/server"
)

// openAPIFile is the description of the admin, audit and revocation APIs.
const openAPIFile = "../../docs/openapi.yaml"

// describedPrefixes are the paths docs/openapi.yaml describes: every route
// under them is described, and nothing else.
var describedPrefixes = []string{"/admin", "/audit", "/revocations"}

// reporter is the harness's resource server: a client that holds only
// audit:report, so it may read the revocation feed and forward records.
const (
	reporterID     = "rs:reporter"
	reporterSecret = "rs-reporter-secret"
)

// loadOpenAPI loads and validates the document, its examples included.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(openAPIFile)
	if err != nil {
		t.Fatalf("load %s: %v", openAPIFile, err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("%s is OpenAPI %s, want 3.1", openAPIFile, doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("validate %s: %v", openAPIFile, err)
	}
	return doc
}

// operations returns every operation the document describes, in the order
// the example run takes them (see phase).
func operations(doc *openapi3.T) []*routers.Route {
	var out []*routers.Route
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op})
		}
	}
	slices.SortFunc(out, func(a, b *routers.Route) int {
		if d := phase(a) - phase(b); d != 0 {
			return d
		}
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	return out
}

// phase orders the example run so that each example finds what it names:
// creations and actions on collections first, then changes to what they
// made, then reads, then deletions.
func phase(r *routers.Route) int {
	switch {
	case r.Method == http.MethodPost && !strings.Contains(r.Path, "{"):
		return 0
	case r.Method == http.MethodGet:
		return 2
	case r.Method == http.MethodDelete:
		return 3
	}
	return 1
}

// mountedRoutes returns the "METHOD /path" of every route the server
// mounts under describedPrefixes.
func mountedRoutes(t *testing.T, h *harness) []string {
	t.Helper()
	srv, ok := h.app.Handler.(*server.Server)
	if !ok {
		t.Fatalf("the harness's handler is a %T, not a *server.Server", h.app.Handler)
	}
	var out []string
	for _, pattern := range srv.Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		if !ok {
			path = pattern
		}
		if !described(path) {
			continue
		}
		if !ok {
			t.Errorf("route %q serves every method: name them, so that the description can", pattern)
			continue
		}
		out = append(out, method+" "+path)
	}
	return out
}

func described(path string) bool {
	for _, p := range describedPrefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	h := newHarness(t)
	var documented []string
	for _, r := range operations(doc) {
		documented = append(documented, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	mounted := mountedRoutes(t, h)
	slices.Sort(mounted)
	if diff := cmp.Diff(mounted, documented); diff != "" {
		t.Errorf("routes mounted (-) and described in %s (+):\n%s", openAPIFile, diff)
	}
}

// TestOpenAPIAgainstServer sends the document's examples to a real server
// and checks every answer against the document: first the refusals (no
// credentials, a body with a member the server does not know, ids that
// name nothing), then every example in turn, each of which must succeed.
func TestOpenAPIAgainstServer(t *testing.T) {
	doc := loadOpenAPI(t)
	c := &openAPIClient{t: t, h: newHarness(t), doc: doc, created: map[string]string{}, known: map[string]string{}}
	ops := operations(doc)

	t.Run("fail/no-credentials", func(t *testing.T) {
		for _, r := range ops {
			if len(c.security(r)) == 0 {
				continue
			}
			c.t = t
			res := c.call(r, callNoAuth)
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d %s, want 401", r.Method, r.Path, res.status, res.body)
			}
		}
	})
	t.Run("fail/unknown-member", func(t *testing.T) {
		for _, r := range ops {
			if s := requestSchema(r); s == nil || s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
				continue
			}
			c.t = t
			res := c.call(r, callUnknownMember)
			if res.status != http.StatusBadRequest {
				t.Errorf("%s %s with an unknown member: %d %s, want 400", r.Method, r.Path, res.status, res.body)
			}
		}
	})
	t.Run("fail/not-found", func(t *testing.T) {
		for _, r := range ops {
			if !strings.Contains(r.Path, "{") {
				continue
			}
			c.t = t
			res := c.call(r, 0)
			if res.status != http.StatusNotFound {
				t.Errorf("%s %s before its example exists: %d %s, want 404", r.Method, r.Path, res.status, res.body)
			}
		}
	})
	t.Run("ok/examples", func(t *testing.T) {
		c.t, c.validateRequests = t, true
		for _, r := range ops {
			res := c.call(r, 0)
			if res.status/100 != 2 {
				t.Fatalf("%s %s with its example: %d %s", r.Method, r.Path, res.status, res.body)
			}
			var answer struct {
				ID          string            `json:"id"`
				AccessToken string            `json:"access_token"`
				Refused     []json.RawMessage `json:"refused"`
			}
			_ = json.Unmarshal(res.body, &answer)
			if len(answer.Refused) > 0 {
				t.Errorf("%s %s refused part of its example: %s", r.Method, r.Path, res.body)
			}
			// What the server makes, later examples name: the id of a
			// created record, the jti of an issued token.
			if res.status == http.StatusCreated && answer.ID != "" {
				c.created[r.Path] = answer.ID
			}
			if answer.AccessToken != "" {
				c.known["jti"], _ = claims(t, answer.AccessToken)["jti"].(string)
			}
		}
	})
}

// Ways of calling an operation other than with its example as it is.
const (
	// callNoAuth sends no credentials.
	callNoAuth = 1 << iota
	// callUnknownMember adds a member to the example body that no route
	// knows.
	callUnknownMember
)

// openAPIClient calls a harness as the document describes and checks the
// answers against it.
type openAPIClient struct {
	t   *testing.T
	h   *harness
	doc *openapi3.T
	// created maps a collection's path to the id of the record its POST
	// created; known maps a path parameter's name to a value the server
	// made (the jti of an issued token). Both stand in for the
	// parameters' examples.
	created, known map[string]string
	// validateRequests checks each request against the document too.
	validateRequests bool
}

// result is an answer, its body read (for a stream, its first event).
type result struct {
	status int
	body   []byte
}

// security returns the first security requirement of r (nil for none).
func (c *openAPIClient) security(r *routers.Route) openapi3.SecurityRequirement {
	reqs := c.doc.Security
	if r.Operation.Security != nil {
		reqs = *r.Operation.Security
	}
	if len(reqs) == 0 {
		return nil
	}
	return reqs[0]
}

func requestSchema(r *routers.Route) *openapi3.Schema {
	if rb := r.Operation.RequestBody; rb != nil && rb.Value != nil {
		if mt := rb.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			return mt.Schema.Value
		}
	}
	return nil
}

// call sends r with the examples of its parameters and body, changed as
// how says, and checks the answer against the document.
func (c *openAPIClient) call(r *routers.Route, how int) result {
	t := c.t
	t.Helper()
	path, params := c.fillPath(r)
	var body []byte
	if rb := r.Operation.RequestBody; rb != nil {
		mt := rb.Value.Content.Get("application/json")
		if mt == nil || mt.Example == nil {
			t.Fatalf("%s %s: the request body has no application/json example", r.Method, r.Path)
		}
		example := mt.Example
		if how&callUnknownMember != 0 {
			m, ok := example.(map[string]any)
			if !ok {
				t.Fatalf("%s %s: the example is not an object", r.Method, r.Path)
			}
			example = mapWith(m, "unknown_member", true)
		}
		var err error
		if body, err = json.Marshal(example); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, c.h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	addExamples(r, req)
	if how&callNoAuth == 0 {
		c.authenticate(r, req)
	}
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: r, Options: &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    checkCredentials,
	}}
	if c.validateRequests {
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			t.Errorf("%s %s: the request does not match the description: %v", r.Method, path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, path, err)
	}
	defer resp.Body.Close()
	res := result{status: resp.StatusCode}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "text/event-stream":
		var event string
		event, res.body = firstEvent(t, resp.Body)
		if schema, ok := streamEvents[event]; ok {
			c.checkOne(t, schema, res.body)
		} else {
			t.Errorf("%s %s: the stream sent an event %q the description does not name", r.Method, path, event)
		}
	case "application/x-ndjson":
		res.body, _ = io.ReadAll(resp.Body)
		for line := range strings.Lines(string(res.body)) {
			c.checkOne(t, "Event", []byte(line))
		}
	default:
		res.body, _ = io.ReadAll(resp.Body)
	}
	// Bodies that are not JSON were checked above against the schema of
	// what they carry; here their status, headers and media type.
	if ct != "application/json" {
		input.Options.ExcludeResponseBody = true
		if rr := r.Operation.Responses.Status(res.status); rr != nil && rr.Value.Content.Get(ct) == nil {
			t.Errorf("%s %s: %d answered %q, which the description does not list", r.Method, path, res.status, ct)
		}
	}
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: res.status, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(res.body)), Options: input.Options,
	})
	if err != nil {
		t.Errorf("%s %s: the answer %d %s does not match the description: %v", r.Method, path, res.status, res.body, err)
	}
	return res
}

// fillPath returns r's path with its parameters: a value the server made
// when there is one, else the parameter's example.
func (c *openAPIClient) fillPath(r *routers.Route) (string, map[string]string) {
	params := map[string]string{}
	for _, list := range []openapi3.Parameters{r.PathItem.Parameters, r.Operation.Parameters} {
		for _, p := range list {
			if p.Value.In != openapi3.ParameterInPath {
				continue
			}
			value, _ := p.Value.Example.(string)
			if v, ok := c.known[p.Value.Name]; ok {
				value = v
			}
			collection, _, _ := strings.Cut(r.Path, "/{"+p.Value.Name+"}")
			if v, ok := c.created[collection]; ok {
				value = v
			}
			if value == "" {
				c.t.Fatalf("%s %s: path parameter %s has no example", r.Method, r.Path, p.Value.Name)
			}
			params[p.Value.Name] = value
		}
	}
	path := r.Path
	for name, value := range params {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(value))
	}
	return path, params
}

// addExamples adds to req the query and header parameters of r that have
// an example.
func addExamples(r *routers.Route, req *http.Request) {
	q := req.URL.Query()
	for _, p := range r.Operation.Parameters {
		value, ok := p.Value.Example.(string)
		if !ok {
			if n, isNumber := p.Value.Example.(float64); isNumber {
				value, ok = strconv.FormatFloat(n, 'f', -1, 64), true
			}
		}
		switch {
		case !ok:
		case p.Value.In == openapi3.ParameterInQuery:
			q.Set(p.Value.Name, value)
		case p.Value.In == openapi3.ParameterInHeader:
			req.Header.Set(p.Value.Name, value)
		}
	}
	req.URL.RawQuery = q.Encode()
}

// authenticate adds the credentials of r's first security requirement.
func (c *openAPIClient) authenticate(r *routers.Route, req *http.Request) {
	for name := range c.security(r) {
		switch name {
		case "adminToken":
			req.Header.Set("Authorization", "Bearer "+adminToken)
		case "clientBasic":
			req.SetBasicAuth(url.QueryEscape(reporterID), url.QueryEscape(reporterSecret))
		default:
			c.t.Fatalf("%s %s: no credentials for the security scheme %q", r.Method, r.Path, name)
		}
	}
}

// checkCredentials is what request validation asks of the credentials: the
// header the scheme names.
func checkCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	auth := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme := in.SecurityScheme
	if scheme.Type != "http" || !strings.HasPrefix(strings.ToLower(auth), strings.ToLower(scheme.Scheme)+" ") {
		return fmt.Errorf("no %s %s credentials", scheme.Type, scheme.Scheme)
	}
	return nil
}

// streamEvents maps the events of the revocation stream to the schemas
// of their data.
var streamEvents = map[string]string{"snapshot": "Snapshot", "revocation": "Entry", "heartbeat": "Heartbeat"}

// firstEvent reads a Server-Sent Events stream up to its first event and
// returns the event's name and data.
func firstEvent(t *testing.T, body io.Reader) (event string, data []byte) {
	t.Helper()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" && data != nil {
			return event, data
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d...)
		}
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
	}
	t.Fatalf("the stream ended before its first event: %v", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	return "", nil
}

// checkOne checks one JSON value against a schema of the document's
// components.
func (c *openAPIClient) checkOne(t *testing.T, schema string, raw []byte) {
	t.Helper()
	ref := c.doc.Components.Schemas[schema]
	if ref == nil {
		t.Fatalf("the description has no schema %s", schema)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Errorf("not JSON: %v: %s", err, raw)
		return
	}
	if err := c.doc.ValidateSchemaJSON(ref.Value, v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("%s does not match the schema %s: %v", raw, schema, err)
	}
}

// mapWith returns a copy of m with k set to v.
func mapWith(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for key, value := range m {
		out[key] = value
	}
	out[k] = v
	return out
}
