package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/termsafe"
)

// preface names the server, the example APIs and the example MCP server
// before the stories.
func (d *demo) preface() {
	fmt.Fprintf(d.out, "Mandate runs at %s, with three example APIs that check its tokens (the verify package):\n", d.issuer)
	for _, name := range []string{"monitoring", "deploy", "expense"} {
		fmt.Fprintf(d.out, "  the %s API at %s\n", name, d.apis[name].url)
	}
	fmt.Fprintf(d.out, "and an example MCP server, behind the same package, at %s\n", d.apis["mcp"].url)
	d.meet(demoReporter)
}

// challenge calls url without a token, prints the 401 challenge (RFC 6750
// §3) and the RFC 9728 metadata document its resource_metadata points to,
// and checks that the document names this server.
func (d *demo) challenge(ctx context.Context, url string) error {
	resp, body, err := d.get(ctx, url)
	if err != nil {
		return err
	}
	d.result("GET %s: %d %s", strings.TrimPrefix(url, "http://"), resp.StatusCode, body)
	challenge := resp.Header.Get("WWW-Authenticate")
	d.result("WWW-Authenticate: %s", challenge)
	// RFC 9728 §5.1: the parameter names the metadata URL. The demo's
	// values hold no quote, so a plain cut reads it.
	_, md, _ := strings.Cut(challenge, `resource_metadata="`)
	md, _, ok := strings.Cut(md, `"`)
	if resp.StatusCode != http.StatusUnauthorized || !ok {
		return fmt.Errorf("demo: GET %s without a token answered %d, WWW-Authenticate %q: want 401 naming resource_metadata", url, resp.StatusCode, challenge)
	}
	resp, body, err = d.get(ctx, md)
	if err != nil {
		return err
	}
	var doc struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || resp.StatusCode != http.StatusOK || !slices.Contains(doc.AuthorizationServers, d.issuer) {
		return fmt.Errorf("demo: the resource metadata at %s (%d) does not name %s", md, resp.StatusCode, d.issuer)
	}
	d.result("GET %s: %d, the API's protected-resource metadata:", strings.TrimPrefix(md, "http://"), resp.StatusCode)
	d.indented([]byte(body))
	d.result("so InfraBot learns its authorization server, %s, and the scopes the API understands", d.issuer)
	return nil
}

// get sends a GET without credentials and returns the answer and its
// body (at most 4 KiB), escaped.
func (d *demo) get(ctx context.Context, url string) (*http.Response, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("demo: GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, "", fmt.Errorf("demo: GET %s: %w", url, err)
	}
	return resp, strings.TrimSpace(string(b)), nil
}

// indented prints a JSON document pretty-printed under a result line,
// escaped (termsafe.JSON, then indented: indenting adds only spaces and
// line feeds between tokens).
func (d *demo) indented(doc []byte) {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(termsafe.JSON(doc)), "       ", "  "); err != nil {
		fmt.Fprintf(d.out, "       %s\n", termsafe.String(string(doc)))
		return
	}
	fmt.Fprintf(d.out, "       %s\n", b.String())
}

// showClaims prints the claims of the access token raw for the reader,
// and what sub, act, iat and exp say. The claims are decoded for display
// only, not verified (the API the token is for verifies it); the header
// and the signature are left out.
func (d *demo) showClaims(label, raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return fmt.Errorf("demo: %s is not a compact JWT", label)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("demo: %s: %w", label, err)
	}
	// RFC 8693 §4.1: act is {"sub": actor, "act": {...the actor before}}.
	type act struct {
		Sub string `json:"sub"`
		Act *act   `json:"act"`
	}
	var c struct {
		Sub string `json:"sub"`
		Act *act   `json:"act"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Act == nil {
		return fmt.Errorf("demo: %s carries no act claim (%v)", label, err)
	}
	d.result("%s, decoded: its claims (the signature left out)", label)
	d.indented(payload)
	var chain []string
	for a := c.Act; a != nil; a = a.Act {
		chain = append(chain, a.Sub)
	}
	d.result("sub, %s, is the person on whose behalf the token acts: it stays the same at every hop.", c.Sub)
	d.result("act, %s, is the agent acting now, and each act nested in it names the agent it acts for, back to %s, the one %s delegated to.",
		chain[0], chain[len(chain)-1], c.Sub)
	d.result("iat and exp are seconds since 1970: issued %s, expires %s.",
		time.Unix(c.Iat, 0).UTC().Format(time.RFC3339), time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	return nil
}
