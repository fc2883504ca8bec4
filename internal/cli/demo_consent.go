package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/htmlform"
)

// The demo opens with a person signing in at Mandate and approving an
// agent on the consent page, as a browser would: the demo plays the
// browser (a cookie jar, no JavaScript) and the agent (the code and
// refresh token grants).

// grant is what an agent holds after a person's consent: its current
// refresh token, rotated on every use.
type grant struct {
	agent, secret, refresh string
}

// browser is a person's browser: cookies kept, redirects not followed.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// consent signs user in with pw from the authorization request of agent
// for scopes, approves every scope the page offers ticked, and redeems
// the code as the agent: the agent's grant.
func (d *demo) consent(ctx context.Context, user, pw, agentID string, scopes []string) (*grant, error) {
	b := browser()
	var v [32]byte
	_, _ = rand.Read(v[:])
	verifier := base64.RawURLEncoding.EncodeToString(v[:])
	sum := sha256.Sum256([]byte(verifier))
	redirect := strings.Replace(config.DevRedirectURI, "127.0.0.1", "127.0.0.1:9", 1)
	q := url.Values{"client_id": {agentID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {strings.Join(scopes, " ")}, "state": {"demo"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	loc, err := follow(ctx, b, http.MethodGet, d.issuer+"/authorize?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	login, err := readForm(ctx, b, d.issuer+loc, "/login")
	if err != nil {
		return nil, err
	}
	login.Set("username", user)
	login.Set("password", pw)
	if loc, err = follow(ctx, b, http.MethodPost, d.issuer+"/login", login); err != nil {
		return nil, err
	}
	approve, err := readForm(ctx, b, d.issuer+loc, "/consent")
	if err != nil {
		return nil, err
	}
	approve.Set("decision", "approve")
	if loc, err = follow(ctx, b, http.MethodPost, d.issuer+"/consent", approve); err != nil {
		return nil, err
	}
	back, err := url.Parse(loc)
	if err != nil || back.Query().Get("code") == "" || back.Query().Get("iss") != d.issuer {
		return nil, fmt.Errorf("demo: the consent sent the browser to %q", loc)
	}
	g := &grant{agent: agentID, secret: d.secretOf(agentID)}
	_, err = d.grantToken(ctx, g, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}})
	return g, err
}

// secretOf is the agent's secret in the configuration.
func (d *demo) secretOf(id string) string {
	for _, a := range d.cfg.Agents {
		if a.ID == id {
			return a.Secret
		}
	}
	return ""
}

// tokenAnswer is a token endpoint's answer, a grant or an error.
type tokenAnswer struct {
	status       int
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	// AuthorizationDetails are the RFC 9396 details granted.
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	ExpiresIn            int64           `json:"expires_in"`
	Error                string          `json:"error"`
	Description          string          `json:"error_description"`
}

// grantToken posts form as the grant's agent; a new refresh token replaces
// the grant's.
func (d *demo) grantToken(ctx context.Context, g *grant, form url.Values) (*tokenAnswer, error) {
	if v := demoCast()[g.agent].version; v != "" {
		form.Set("agent_version", v)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.issuer+"/token", strings.NewReader(form.Encode()))
	req.SetBasicAuth(url.QueryEscape(g.agent), url.QueryEscape(g.secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("demo: token: %w", err)
	}
	defer resp.Body.Close()
	a := &tokenAnswer{status: resp.StatusCode}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(a); err != nil {
		return nil, fmt.Errorf("demo: token answer: %w", err)
	}
	if a.RefreshToken != "" {
		g.refresh = a.RefreshToken
	}
	if resp.StatusCode == http.StatusOK && a.AccessToken == "" {
		return nil, fmt.Errorf("demo: the token endpoint answered 200 without a token")
	}
	return a, nil
}

// follow sends the request and returns where the answer redirects to.
func follow(ctx context.Context, b *http.Client, method, u string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequestWithContext(ctx, method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.Do(req)
	if err != nil {
		return "", fmt.Errorf("demo: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("demo: %s %s answered %d, not a redirect", method, u, resp.StatusCode)
	}
	return loc, nil
}

// readForm loads the page at u and returns the fields of its form to
// action: hidden and text inputs, ticked boxes, selected options.
func readForm(ctx context.Context, b *http.Client, u, action string) (url.Values, error) {
	doc, err := loadPage(ctx, b, u)
	if err != nil {
		return nil, err
	}
	return formOf(doc, u, action)
}

// loadPage loads and parses the page at u, which must answer 200.
func loadPage(ctx context.Context, b *http.Client, u string) (*html.Node, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := b.Do(req)
	if err != nil {
		return nil, fmt.Errorf("demo: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	doc, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("demo: GET %s answered %d", u, resp.StatusCode)
	}
	return doc, nil
}

// formOf returns the fields of the form to action on doc, the page at u.
func formOf(doc *html.Node, u, action string) (url.Values, error) {
	v, ok := htmlform.Fields(doc, action)
	if !ok {
		return nil, fmt.Errorf("demo: no form to %s on %s", action, u)
	}
	return v, nil
}
