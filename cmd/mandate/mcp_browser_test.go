package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/html"

	"github.com/mandate-dev/mandate/internal/htmlform"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// samBrowser is Sam's browser driven without a screen, as the MCP client's
// authorization-code fetcher: it follows the authorization URL the SDK
// hands it, signs Sam in with his password when Mandate asks, reads the
// consent page and approves the scopes it is told to tick (or declines),
// and returns the code, state and iss of the redirect to the client, which
// it does not follow. Its cookies are Sam's session, which My agents also
// uses. It returns errors rather than failing the test: the SDK calls it
// from inside a request.
type samBrowser struct {
	base, user, password string
	client               *http.Client

	mu sync.Mutex
	// tick, when set, are the scopes Sam leaves ticked on the next
	// consent page (nil keeps the page's own ticks).
	tick []string
	// decline makes Sam decline the next consent pages.
	decline bool
	// visits are the authorization requests the SDK sent him to.
	visits []visit
}

// visit is one authorization request and the consent page it led to.
type visit struct {
	query   url.Values
	signIn  bool
	consent string // the consent page's visible text
}

func newSamBrowser(base, user, password string) *samBrowser {
	jar, _ := cookiejar.New(nil)
	return &samBrowser{base: base, user: user, password: password, client: &http.Client{
		Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// ticks sets the scopes Sam leaves ticked on the next consent page.
func (b *samBrowser) ticks(scopes ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tick = scopes
}

// declines makes Sam decline from now on.
func (b *samBrowser) declines() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.decline = true
}

// history is every visit so far.
func (b *samBrowser) history() []visit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.visits)
}

// fetch is the auth.AuthorizationCodeFetcher.
func (b *samBrowser) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	au, err := url.Parse(args.URL)
	if err != nil {
		return nil, fmt.Errorf("authorization URL: %w", err)
	}
	v := visit{query: au.Query()}
	defer func() {
		b.mu.Lock()
		b.visits = append(b.visits, v)
		b.mu.Unlock()
	}()
	first, err := b.get(ctx, args.URL)
	if err != nil {
		return nil, err
	}
	next, err := first.location(b.base, http.StatusFound)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	if next.Path == "/login" {
		v.signIn = true
		login, err := b.get(ctx, next.String())
		if err != nil {
			return nil, err
		}
		f, err := login.form("/login")
		if err != nil {
			return nil, err
		}
		f.Set("username", b.user)
		f.Set("password", b.password)
		after, err := b.post(ctx, "/login", f)
		if err != nil {
			return nil, err
		}
		if next, err = after.location(b.base, http.StatusSeeOther); err != nil {
			return nil, fmt.Errorf("sign-in: %w", err)
		}
	}
	consent, err := b.get(ctx, next.String())
	if err != nil {
		return nil, err
	}
	v.consent = consent.text()
	f, err := consent.form("/consent")
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	tick, decline := b.tick, b.decline
	b.tick = nil
	b.mu.Unlock()
	if tick != nil {
		f["scope"] = tick
	}
	f.Set("decision", "approve")
	if decline {
		f.Set("decision", "deny")
	}
	res, err := b.post(ctx, "/consent", f)
	if err != nil {
		return nil, err
	}
	back, err := res.location(b.base, http.StatusSeeOther)
	if err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	q := back.Query()
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("the authorization was refused: %s", e)
	}
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

// revoke revokes, on My agents with Sam's session, every delegation to
// agent still in force, through the page's own forms. It returns how many
// it revoked.
func (b *samBrowser) revoke(ctx context.Context, agent string) (int, error) {
	mine, err := b.get(ctx, b.base+"/my/agents")
	if err != nil {
		return 0, err
	}
	if mine.status != http.StatusOK {
		return 0, fmt.Errorf("my agents: %d", mine.status)
	}
	var forms []url.Values
	for _, sec := range elements(mine.doc, "section") {
		if !strings.HasPrefix(htmlform.Attr(sec, "aria-label"), agent+", delegation ") {
			continue
		}
		if f, err := (page{doc: sec}).form("/my/agents/revoke"); err == nil {
			forms = append(forms, f)
		}
	}
	for _, f := range forms {
		res, err := b.post(ctx, "/my/agents/revoke", f)
		if err != nil {
			return 0, err
		}
		if _, err := res.location(b.base, http.StatusSeeOther); err != nil {
			return 0, fmt.Errorf("revoke: %w", err)
		}
	}
	return len(forms), nil
}

func (b *samBrowser) get(ctx context.Context, u string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	return b.send(req)
}

func (b *samBrowser) post(ctx context.Context, path string, form url.Values) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.send(req)
}

func (b *samBrowser) send(req *http.Request) (page, error) {
	resp, err := b.client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return page{}, err
	}
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		return page{}, err
	}
	return page{status: resp.StatusCode, header: resp.Header, doc: doc}, nil
}

// page is an HTML answer.
type page struct {
	status int
	header http.Header
	doc    *html.Node
}

// location is the page's Location, made absolute on base, when its status
// is want.
func (pg page) location(base string, want int) (*url.URL, error) {
	l := pg.header.Get("Location")
	if pg.status != want || l == "" {
		return nil, fmt.Errorf("answered %d (Location %q), want %d: %s", pg.status, l, want, pg.text())
	}
	if strings.HasPrefix(l, "/") {
		l = base + l
	}
	return url.Parse(l)
}

// form is the values the form to action would send: its hidden and text
// inputs, ticked checkboxes and selected options.
func (pg page) form(action string) (url.Values, error) {
	v, ok := htmlform.Fields(pg.doc, action)
	if !ok {
		return nil, fmt.Errorf("no form to %s on the page: %s", action, pg.text())
	}
	return v, nil
}

// text is the page's visible text, white space folded.
func (pg page) text() string {
	if pg.doc == nil {
		return ""
	}
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(pg.doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

// elements are the elements named tag under n, in document order.
func elements(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	return out
}
