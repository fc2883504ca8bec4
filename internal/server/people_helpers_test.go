package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// The people's flow as an application and a person's browser see it:
// a cookie jar, no redirect followed on its own, and the pages' forms read
// from their HTML.

const (
	appRedirect = "http://127.0.0.1:8400/cb"
	samPassword = "sam-password-for-tests"
	verifierA   = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

// challenge is the S256 code_challenge of v.
func challenge(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// person is a browser: cookies kept, redirects not followed.
type person struct {
	t      *testing.T
	h      *harness
	client *http.Client
}

func (h *harness) person() *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: h.t, h: h, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// page is an HTML answer.
type page struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

func (p *person) send(req *http.Request) page {
	p.t.Helper()
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	doc, _ := html.Parse(strings.NewReader(string(b)))
	return page{status: resp.StatusCode, header: resp.Header, body: string(b), doc: doc}
}

func (p *person) get(path string) page {
	p.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = p.h.url + path
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return p.send(req)
}

func (p *person) post(path string, form url.Values) page {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.h.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return p.send(req)
}

// location is the page's Location header, made absolute on the issuer.
func (pg page) location(t *testing.T, base string) *url.URL {
	t.Helper()
	l := pg.header.Get("Location")
	if l == "" {
		t.Fatalf("no Location (status %d): %s", pg.status, pg.body)
	}
	if strings.HasPrefix(l, "/") {
		l = base + l
	}
	u, err := url.Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// form returns the values of the form whose action is action: its hidden
// and text inputs, checked checkboxes and selected options.
func (pg page) form(t *testing.T, action string) url.Values {
	t.Helper()
	var found *html.Node
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if found == nil && n.Type == html.ElementNode && n.Data == "form" && attr(n, "action") == action {
			found = n
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(pg.doc)
	if found == nil {
		t.Fatalf("no form to %s on the page:\n%s", action, pg.body)
	}
	v := url.Values{}
	var fill func(n *html.Node)
	fill = func(n *html.Node) {
		if n.Type == html.ElementNode {
			name := attr(n, "name")
			switch {
			case n.Data == "input" && name != "":
				typ := attr(n, "type")
				_, checked := attrOK(n, "checked")
				_, disabled := attrOK(n, "disabled")
				if (typ != "checkbox" || checked) && !disabled && typ != "submit" {
					v.Add(name, attr(n, "value"))
				}
			case n.Data == "select" && name != "":
				for o := n.FirstChild; o != nil; o = o.NextSibling {
					if _, sel := attrOK(o, "selected"); sel && o.Type == html.ElementNode {
						v.Set(name, attr(o, "value"))
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			fill(c)
		}
	}
	fill(found)
	return v
}

// text is the page's visible text, white space folded.
func (pg page) text() string {
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(pg.doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

func attr(n *html.Node, key string) string { v, _ := attrOK(n, key); return v }

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// authorizeURL is an authorization request of client for scopes, with
// PKCE S256 of verifierA and state st; extra adds parameters.
func (h *harness) authorizeURL(client, scopes, st string, extra url.Values) string {
	q := url.Values{
		"client_id": {client}, "redirect_uri": {appRedirect}, "response_type": {"code"}, "scope": {scopes},
		"state": {st}, "code_challenge": {challenge(verifierA)}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return h.url + "/authorize?" + q.Encode()
}

// signIn signs the person in with a password from the login page the
// authorization request led to, and returns the page after it.
func (p *person) signIn(loginPath, user, password string) page {
	p.t.Helper()
	login := p.get(loginPath)
	if login.status != http.StatusOK {
		p.t.Fatalf("login page: %d %s", login.status, login.body)
	}
	f := login.form(p.t, "/login")
	f.Set("username", user)
	f.Set("password", password)
	return p.post("/login", f)
}

// consent runs an authorization request to the consent page: the request,
// the sign-in when no session exists, and the consent page itself.
func (p *person) consent(authURL, user, password string) page {
	p.t.Helper()
	first := p.get(authURL)
	if first.status != http.StatusFound {
		p.t.Fatalf("authorize: %d %s", first.status, first.body)
	}
	next := first.location(p.t, p.h.url)
	if next.Path == "/login" {
		after := p.signIn(next.RequestURI(), user, password)
		if after.status != http.StatusSeeOther {
			p.t.Fatalf("sign-in: %d %s", after.status, after.text())
		}
		next = after.location(p.t, p.h.url)
	}
	return p.get(next.RequestURI())
}

// approve submits the consent page with scopes ticked (nil keeps the
// page's own ticks) and returns the code and state the application
// receives.
func (p *person) approve(consentPage page, scopes []string) (code string, back url.Values) {
	p.t.Helper()
	f := consentPage.form(p.t, "/consent")
	if scopes != nil {
		f["scope"] = scopes
	}
	f.Set("decision", "approve")
	res := p.post("/consent", f)
	if res.status != http.StatusSeeOther {
		p.t.Fatalf("approve: %d %s", res.status, res.text())
	}
	u := res.location(p.t, p.h.url)
	return u.Query().Get("code"), u.Query()
}
