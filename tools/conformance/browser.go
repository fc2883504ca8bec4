package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// browser is the person's browser: it keeps cookies, follows no redirect
// on its own and runs no JavaScript (Mandate's pages need none).
type browser struct {
	client *http.Client
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// signIn does what the tool asks a person to do with authURL: open it,
// sign in as user with password on the sign-in page, approve on the
// consent page what it offers ticked, and follow the redirect back to the
// client (the tool's callback server). It returns the URL the browser was
// sent back to.
func (b *browser) signIn(ctx context.Context, authURL, user, password string) (string, error) {
	loc, err := b.follow(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", err
	}
	login, err := b.readForm(ctx, loc, "/login")
	if err != nil {
		return "", err
	}
	login.Set("username", user)
	login.Set("password", password)
	if loc, err = b.follow(ctx, http.MethodPost, resolve(loc, "/login"), login); err != nil {
		return "", err
	}
	approve, err := b.readForm(ctx, loc, "/consent")
	if err != nil {
		return "", err
	}
	approve.Set("decision", "approve")
	if loc, err = b.follow(ctx, http.MethodPost, resolve(loc, "/consent"), approve); err != nil {
		return "", err
	}
	back, err := url.Parse(loc)
	if err != nil || back.Query().Get("code") == "" {
		return "", fmt.Errorf("the consent sent the browser to %q, not back to the client with a code", loc)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("the client's redirect URI: %w", err)
	}
	resp.Body.Close()
	return loc, nil
}

// follow sends the request and returns the absolute URL its answer
// redirects to; any other answer is an error that quotes the page.
func (b *browser) follow(ctx context.Context, method, u string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("%s %s answered %d, not a redirect: %s", method, u, resp.StatusCode, pageText(resp.Body))
	}
	return resolve(u, loc), nil
}

// readForm loads the page at u and returns the fields of its form whose
// action is action: hidden and text inputs, ticked boxes, selected options.
func (b *browser) readForm(ctx context.Context, u, action string) (url.Values, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %d: %s", u, resp.StatusCode, pageText(resp.Body))
	}
	doc, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	form := find(doc, func(n *html.Node) bool { return n.Data == "form" && attr(n, "action") == action })
	if form == nil {
		return nil, fmt.Errorf("no form to %s on %s", action, u)
	}
	v := url.Values{}
	collect(form, v)
	return v, nil
}

// resolve is ref as seen from the page at base.
func resolve(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

// collect adds the form fields below n to v, as a browser submits them.
func collect(n *html.Node, v url.Values) {
	if n.Type == html.ElementNode {
		name := attr(n, "name")
		_, checked := hasAttr(n, "checked")
		_, disabled := hasAttr(n, "disabled")
		switch typ := attr(n, "type"); {
		case n.Data == "input" && name != "" && !disabled && typ != "submit" && (typ != "checkbox" || checked):
			v.Add(name, attr(n, "value"))
		case n.Data == "option":
			if _, sel := hasAttr(n, "selected"); sel && n.Parent != nil {
				v.Set(attr(n.Parent, "name"), attr(n, "value"))
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		collect(c, v)
	}
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func attr(n *html.Node, key string) string { v, _ := hasAttr(n, key); return v }

func hasAttr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// pageText is the visible text of an error page, shortened.
func pageText(r io.Reader) string {
	doc, err := html.Parse(io.LimitReader(r, 1<<20))
	if err != nil {
		return ""
	}
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			if t := strings.TrimSpace(n.Data); t != "" {
				sb.WriteString(t + " ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	s := strings.TrimSpace(sb.String())
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
