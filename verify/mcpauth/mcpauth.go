package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-dev/mandate/verify"
)

// MethodCallTool is the MCP method whose calls the tool map governs.
const MethodCallTool = "tools/call"

// CodeForbidden is the JSON-RPC error code of a call Middleware refuses,
// in the range JSON-RPC 2.0 leaves to servers and one neither MCP nor the
// SDK uses (the SDK's client reads -32003 and -32004 as a closing
// connection).
const CodeForbidden = -32030

// ErrForbidden is what Middleware's refusals wrap.
var ErrForbidden = errors.New("mcpauth: the access token does not allow this tool")

// Tools maps a tool's name to the scopes a tools/call of it needs, every
// one of them. A tool mapped to no scopes needs only a valid token; a tool
// not in the map is refused.
type Tools map[string][]string

// Guard checks an MCP server's requests with a verify.Verifier and a tool
// map. Build it with New; it is safe for concurrent use.
type Guard struct {
	v     *verify.Verifier
	tools Tools
	// bridge hands the verified principal to the SDK as its TokenInfo.
	bridge func(http.Handler) http.Handler
}

// New returns a Guard for the server v verifies tokens for and the scopes
// of its tools; tools is copied. Handler needs v; Middleware alone does
// not use it (and, without Handler in front, refuses every tool call).
func New(v *verify.Verifier, tools Tools) *Guard {
	own := make(Tools, len(tools))
	for name, scopes := range tools {
		own[name] = slices.Clone(scopes)
	}
	return &Guard{v: v, tools: own, bridge: auth.RequireBearerToken(tokenInfo, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})}
}

// Scopes returns the scopes a call of tool needs; listed is false when the
// map does not name the tool.
func (g *Guard) Scopes(tool string) (scopes []string, listed bool) {
	s, ok := g.tools[tool]
	return slices.Clone(s), ok
}

// Handler wraps the SDK's HTTP handler (mcp.NewStreamableHTTPHandler): the
// token is verified first (verify.Middleware: 401, 400 or 503, and one
// audit record per request); the request body, at most
// mcp.DefaultMaxRequestBodyBytes (413 beyond), is read to name the
// JSON-RPC method and tool in that record (action "tools/call", resource
// "tool/<name>"; in a batch, the first call the token may not make); a
// message whose method, params or tool name repeats, or comes in another
// case, or that another value follows, is refused with 400
// invalid_request, since the SDK's decoder could read it as another tool
// than this one; a tools/call of a listed tool
// whose scopes the token lacks is refused with 403 insufficient_scope
// naming every scope the tool needs (every tool of a batch). The SDK then
// receives the request with the principal as its auth.TokenInfo
// (PrincipalFrom): UserID binds a session to the person and the agent that
// opened it.
func (g *Guard) Handler(h http.Handler) http.Handler {
	inner := g.bridge(h)
	return g.v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Body == nil {
			inner.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, mcp.DefaultMaxRequestBodyBytes))
		if err != nil {
			verify.Refused(r.Context(), "request_too_large")
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "the request body is too large")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		need, unlisted, ambiguous := g.inspect(r.Context(), r.URL.Path, body)
		if ambiguous {
			verify.Refused(r.Context(), "message_ambiguous")
			writeError(w, http.StatusBadRequest, "invalid_request", "the JSON-RPC message repeats method, params or name, or names one in another case")
			return
		}
		if unlisted {
			// Middleware refuses the call inside the SDK; the record says so.
			verify.Refused(r.Context(), "tool_not_allowed")
		}
		if len(need) > 0 {
			verify.RequireScope(need...).Then(inner).ServeHTTP(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	}))
}

// message is what Handler reads of a JSON-RPC message.
type message struct {
	method, tool string
}

// inspect names the method of body (one message or a batch) in the
// request's record and returns the scopes its tool calls need, in the
// map's order, and whether one calls a tool the map does not name. The
// record names the first tool call the token may not make, or else the
// first message's. A body that is not JSON-RPC is left to the SDK, which
// refuses it. ambiguous is true for a message that the SDK's decoder could
// read otherwise than this one (readMessage).
func (g *Guard) inspect(ctx context.Context, path string, body []byte) (need []string, unlisted, ambiguous bool) {
	var raws []json.RawMessage
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) > 0 && b[0] == '[' {
		if json.Unmarshal(b, &raws) != nil {
			return nil, false, false
		}
	} else {
		raws = []json.RawMessage{body}
	}
	msgs := make([]message, 0, len(raws))
	for _, raw := range raws {
		m, ok, amb := readMessage(raw)
		if amb {
			return nil, false, true
		}
		if !ok {
			return nil, false, false
		}
		msgs = append(msgs, m)
	}
	p, _ := verify.FromContext(ctx)
	named := false
	for i, m := range msgs {
		if m.method != MethodCallTool {
			continue
		}
		scopes, listed := g.tools[m.tool]
		unlisted = unlisted || !listed
		denied := !listed
		for _, s := range scopes {
			denied = denied || p == nil || !p.HasScope(s)
			if !slices.Contains(need, s) {
				need = append(need, s)
			}
		}
		if denied && !named {
			verify.SetAction(ctx, m.method, "tool/"+m.tool)
			named = true
		}
		if i == 0 && !named {
			verify.SetAction(ctx, m.method, "tool/"+m.tool)
		}
	}
	if !named && len(msgs) > 0 && msgs[0].method != "" && msgs[0].method != MethodCallTool {
		verify.SetAction(ctx, msgs[0].method, path)
	}
	return need, unlisted, false
}

// readMessage reads the method of one JSON-RPC message and, for
// tools/call, the tool's name, matching member names exactly as the SDK's
// decoder does (encoding/json alone would also take "Name" for name). ok
// is false for what is not a JSON object with a string method. ambiguous
// is true when method, params or name appears twice, or in another case
// beside or instead of its own: decoders differ on which one they take,
// so the tool this reads could be another than the one the SDK runs.
func readMessage(raw []byte) (m message, ok, ambiguous bool) {
	top, ok, ambiguous := members(raw, "method", "params")
	if !ok || ambiguous {
		return m, ok, ambiguous
	}
	if v, has := top["method"]; !has || json.Unmarshal(v, &m.method) != nil {
		return m, false, false
	}
	if m.method != MethodCallTool {
		return m, true, false
	}
	params, ok, ambiguous := members(top["params"], "name")
	if ambiguous {
		return m, false, true
	}
	if ok {
		_ = json.Unmarshal(params["name"], &m.tool)
	}
	return m, true, false
}

// members returns the members of the JSON object raw that are named
// exactly as one of names; ok is false when raw is not an object.
// ambiguous is true when a member whose name equals one of names but for
// case appears, one of names appears twice, or another value follows the
// object.
func members(raw []byte, names ...string) (out map[string]json.RawMessage, ok, ambiguous bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false, false
	}
	out = map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false, false
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, false
		}
		for _, n := range names {
			if !strings.EqualFold(key, n) {
				continue
			}
			if key != n || seen[n] {
				return nil, true, true
			}
			seen[n] = true
			out[n] = v
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, false, false
	}
	if _, err := dec.Token(); err != io.EOF {
		// A second value after the object: which one a decoder takes
		// is its own choice.
		return nil, true, true
	}
	return out, true, false
}

// Middleware returns the SDK server middleware that checks every
// tools/call against the tool map (add it with
// mcp.Server.AddReceivingMiddleware): a call without a verified principal
// (a server not behind Handler), of a tool the map does not name, or whose
// token lacks one of the tool's scopes is refused with a JSON-RPC error
// (CodeForbidden) before the tool runs. Other methods pass.
func (g *Guard) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != MethodCallTool {
				return next(ctx, method, req)
			}
			if err := g.allow(req); err != nil {
				return nil, &jsonrpc.Error{Code: CodeForbidden, Message: err.Error()}
			}
			return next(ctx, method, req)
		}
	}
}

// allow checks a tools/call request against the map.
func (g *Guard) allow(req mcp.Request) error {
	p, ok := PrincipalFrom(req)
	if !ok {
		return fmt.Errorf("%w: the request was not verified", ErrForbidden)
	}
	call, ok := req.(*mcp.CallToolRequest)
	if !ok || call.Params == nil {
		return fmt.Errorf("%w: not a tool call", ErrForbidden)
	}
	scopes, listed := g.tools[call.Params.Name]
	if !listed {
		return fmt.Errorf("%w: the tool is not allowed", ErrForbidden)
	}
	for _, s := range scopes {
		if !p.HasScope(s) {
			return fmt.Errorf("%w: the tool needs the scope %s", ErrForbidden, s)
		}
	}
	return nil
}

// principalKey is the TokenInfo.Extra key of the principal.
const principalKey = "mandate.principal"

// PrincipalFrom returns the verified principal of an SDK request that came
// through Handler (from its auth.TokenInfo); ok is false otherwise.
func PrincipalFrom(req mcp.Request) (*verify.Principal, bool) {
	if req == nil {
		return nil, false
	}
	extra := req.GetExtra()
	if extra == nil || extra.TokenInfo == nil {
		return nil, false
	}
	p, ok := extra.TokenInfo.Extra[principalKey].(*verify.Principal)
	return p, ok && p != nil
}

// tokenInfo is the SDK's TokenVerifier: the token was verified by
// verify.Middleware, whose principal it turns into a TokenInfo. Outside
// that middleware it refuses, so the SDK answers 401. Expiration is left
// zero: verify has checked exp with its own leeway, and a second clock
// would refuse the tokens within it.
func tokenInfo(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
	p, ok := verify.FromContext(r.Context())
	if !ok {
		return nil, fmt.Errorf("mcpauth: no verified principal: %w", auth.ErrInvalidToken)
	}
	return &auth.TokenInfo{
		Scopes: slices.Clone(p.Scopes),
		// The person and the agent: a session opened by one agent of Sam's
		// is not another agent's to use.
		UserID: p.Subject + " " + p.PerformedBy(),
		Extra:  map[string]any{principalKey: p},
	}, nil
}

// BearerToken returns the access token of the HTTP request that carried
// req (its Authorization header), which Handler verified: a tool that
// hands work on exchanges it for a token of its own (package agent) and
// never passes it on. ok is false when there is none.
func BearerToken(req mcp.Request) (token string, ok bool) {
	if req == nil || req.GetExtra() == nil {
		return "", false
	}
	h := req.GetExtra().Header.Values("Authorization")
	if len(h) != 1 || len(h[0]) < 7 || !equalFoldASCII(h[0][:7], "bearer ") {
		return "", false
	}
	t := bytes.TrimLeft([]byte(h[0][7:]), " ")
	return string(t), len(t) > 0
}

// equalFoldASCII compares a and b ignoring ASCII case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// writeError writes an RFC 6750 style JSON error.
func writeError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	_, _ = w.Write(body)
}
