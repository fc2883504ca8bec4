package browsertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
)

// pages are two tiny sites' pages: an accessible form and its answer, and
// a page with known serious violations.
var pages = template.Must(template.New("").Parse(`
{{define "form"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body><main>
<h1>Sign in</h1>
<form method="post" action="/hello">
  <label for="name">Your name</label>
  <input id="name" name="name" type="text" required>
  <input id="remember" name="remember" type="checkbox" checked>
  <label for="remember">Remember me</label>
  <button type="submit" name="decision" value="continue">Continue</button>
  <button type="submit" name="decision" value="cancel">Cancel</button>
</form>
<p><a id="about" href="/welcome">About this page</a></p>
</main></body></html>{{end}}

{{define "welcome"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Welcome</title></head>
<body><main>
<h1>Hello, {{.Name}}</h1>
<p id="decision">{{.Decision}}</p>
<p id="remember">remember: {{.Remember}}</p>
</main></body></html>{{end}}

{{define "broken"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main>
<h1>Broken</h1>
<img src="/logo.png">
<form method="post" action="/hello"><input id="nameless" name="name" type="text"></form>
</main></body></html>{{end}}
`))

// site serves pages with the headers a Mandate page sends; POST /hello
// sets a session cookie and redirects to /welcome, which reads it.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	render := func(w http.ResponseWriter, name string, data any) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		if err := pages.ExecuteTemplate(w, name, data); err != nil {
			t.Errorf("template %s: %v", name, err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { render(w, "form", nil) })
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) { render(w, "broken", nil) })
	mux.HandleFunc("POST /hello", func(w http.ResponseWriter, r *http.Request) {
		remember := "off"
		if r.PostFormValue("remember") == "on" {
			remember = "on"
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: r.PostFormValue("name"), Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
		http.SetCookie(w, &http.Cookie{Name: "choice", Value: r.PostFormValue("decision") + "." + remember, Path: "/"})
		http.Redirect(w, r, "/welcome", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /welcome", func(w http.ResponseWriter, r *http.Request) {
		data := struct{ Name, Decision, Remember string }{Name: "stranger"}
		if c, err := r.Cookie("session"); err == nil {
			data.Name = c.Value
		}
		if c, err := r.Cookie("choice"); err == nil {
			data.Decision, data.Remember, _ = strings.Cut(c.Value, ".")
		}
		render(w, "welcome", data)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestBrowser(t *testing.T) {
	srv := site(t)
	b := New(t)

	b.Navigate(t, srv.URL+"/")
	resp := b.Response(t)
	if resp.Status != http.StatusOK || resp.Header.Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("response of /: status %d, headers %v", resp.Status, resp.Header)
	}
	if got := b.Text(t, "h1"); got != "Sign in" {
		t.Errorf("h1 = %q, want Sign in", got)
	}
	// The page's strict Content-Security-Policy does not keep axe-core out.
	b.CheckAccessibility(t, "the sign-in form")

	b.Type(t, "#name", "Ada")
	b.Uncheck(t, "#remember")
	b.Uncheck(t, "#remember") // already unchecked: nothing to do
	b.ClickText(t, "Continue")
	if got, want := b.URL(t), srv.URL+"/welcome"; got != want {
		t.Errorf("after Continue, URL = %q, want %q", got, want)
	}
	if got := b.Text(t, "h1"); got != "Hello, Ada" {
		t.Errorf("h1 = %q, want Hello, Ada", got)
	}
	if got := b.Text(t, "#decision") + " " + b.Text(t, "#remember"); got != "continue remember: off" {
		t.Errorf("the form sent %q, want the Continue button and the box unchecked", got)
	}
	if got := b.Response(t); got.URL != srv.URL+"/welcome" || got.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("response after the redirect: %+v", got)
	}
	session := b.Cookie(t, "session")
	if session == nil {
		t.Fatalf("no session cookie; cookies: %+v", b.Cookies(t))
	}
	want := Cookie{Name: "session", Value: "Ada", Domain: "127.0.0.1", Path: "/", Secure: true, HTTPOnly: true, SameSite: "Strict", Session: true}
	if *session != want {
		t.Errorf("session cookie = %+v, want %+v", *session, want)
	}
	if c := b.Cookie(t, "choice"); c == nil || c.HTTPOnly || c.Secure || c.SameSite != "" {
		t.Errorf("choice cookie = %+v, want one without flags", c)
	}

	// Submit sends the form as Enter would; Check ticks the box again.
	b.Navigate(t, srv.URL+"/")
	b.Type(t, "#name", "Bob")
	b.Uncheck(t, "#remember")
	b.Check(t, "#remember")
	b.Submit(t, "#name")
	if got := b.Text(t, "h1") + " / " + b.Text(t, "#remember"); got != "Hello, Bob / remember: on" {
		t.Errorf("after Submit: %q", got)
	}
	b.Navigate(t, srv.URL+"/")
	b.Type(t, "#name", "Cy")
	b.Click(t, `button[value="cancel"]`)
	if got := b.Text(t, "#decision"); got != "cancel" {
		t.Errorf("clicking Cancel sent decision %q", got)
	}
	b.Navigate(t, srv.URL+"/")
	b.Click(t, "#about")
	if !b.Exists(t, "#decision") || b.Exists(t, "#name") {
		t.Error("clicking the link did not load /welcome")
	}

	dir := t.TempDir()
	t.Setenv("MANDATE_SCREENSHOTS", dir)
	path := b.Screenshot(t, "welcome page")
	if !strings.HasPrefix(path, dir+"/TestBrowser-welcome_page") {
		t.Errorf("screenshot path %s, want one in %s named after the test", path, dir)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot %s is no PNG (%v)", path, err)
	}
}

// TestTLS: a page served over TLS with httptest's own certificate loads.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=63072000")
		if err := pages.ExecuteTemplate(w, "welcome", struct{ Name, Decision, Remember string }{Name: "TLS"}); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	b := New(t)
	b.Navigate(t, srv.URL+"/welcome")
	if got := b.Text(t, "h1"); got != "Hello, TLS" {
		t.Errorf("h1 = %q", got)
	}
	if got := b.Response(t).Header.Get("Strict-Transport-Security"); got != "max-age=63072000" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}
}

// TestAuditFindsViolations: the checker passes the accessible page and
// names the broken page's image without alt and input without a label.
func TestAuditFindsViolations(t *testing.T) {
	srv := site(t)
	b := New(t)

	b.Navigate(t, srv.URL+"/")
	good, err := b.Audit()
	if errors.Is(err, ErrAxeUnavailable) {
		unavailable(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range good {
		if v.Serious() {
			t.Errorf("the accessible page has a serious violation: %s", v)
		}
	}

	b.Navigate(t, srv.URL+"/broken")
	bad, err := b.Audit()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]Violation{}
	for _, v := range bad {
		found[v.Rule] = v
	}
	for rule, target := range map[string]string{"image-alt": "img", "label": "#nameless"} {
		v, ok := found[rule]
		switch {
		case !ok:
			t.Errorf("no %s violation on the broken page; found %v", rule, bad)
		case !v.Serious():
			t.Errorf("%s has impact %q, want serious or critical", rule, v.Impact)
		case len(v.Nodes) != 1 || !slices.Equal(v.Nodes[0].Target, []string{target}):
			t.Errorf("%s nodes = %+v, want the one element %s", rule, v.Nodes, target)
		case v.Help == "" || !strings.HasPrefix(v.HelpURL, "https://"):
			t.Errorf("%s has no help: %+v", rule, v)
		}
	}
	var r recorder
	report(&r, "the broken page", bad)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "image-alt (") || !strings.Contains(r.errors[0], "label (") {
		t.Errorf("CheckAccessibility would report %q, want a failure naming image-alt and label", r.errors)
	}
}

// recorder is a reporter that keeps what it is told.
type recorder struct{ errors, logs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// TestReport: CheckAccessibility's verdict fails a test on serious and
// critical violations only, naming rule, help and elements.
func TestReport(t *testing.T) {
	violations := []Violation{
		{Rule: "image-alt", Impact: "critical", Help: "Images must have alternative text", HelpURL: "https://example.test/image-alt",
			Nodes: []Node{{Target: []string{"img"}, HTML: `<img src="/logo.png">`}}},
		{Rule: "region", Impact: "moderate", Help: "All page content should be contained by landmarks", HelpURL: "https://example.test/region",
			Nodes: []Node{{Target: []string{"p"}, HTML: "<p>"}}},
	}
	var r recorder
	report(&r, "the broken page", violations)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "the broken page: 1 serious or critical") ||
		!strings.Contains(r.errors[0], "image-alt (critical): Images must have alternative text [https://example.test/image-alt] at img") ||
		!strings.Contains(r.errors[0], `<img src="/logo.png">`) || strings.Contains(r.errors[0], "region") {
		t.Errorf("errors = %q, want image-alt with its help and element, not region", r.errors)
	}
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "region (moderate)") {
		t.Errorf("logs = %q, want region logged", r.logs)
	}

	var clean recorder
	report(&clean, "a fine page", violations[1:])
	if len(clean.errors) != 0 {
		t.Errorf("a moderate violation failed the test: %q", clean.errors)
	}
}

func TestFindChromiumNamedButMissing(t *testing.T) {
	t.Setenv("MANDATE_CHROMIUM", "/nonexistent/chromium")
	_, err := findChromium()
	if err == nil || !strings.Contains(err.Error(), "MANDATE_CHROMIUM=/nonexistent/chromium") || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Errorf("findChromium() error = %v, want one naming the path and how to get Chromium", err)
	}
}

func TestXPathLiteral(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{in: "Allow", want: `"Allow"`},
		{in: "  Allow \n access ", want: `"Allow access"`},
		{in: `say "yes"`, want: `'say "yes"'`},
		{in: `it's "ok"`, want: `concat("it's ", '"', "ok", '"', "")`},
	} {
		if got := xpathLiteral(tc.in); got != tc.want {
			t.Errorf("xpathLiteral(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestCheckIntegrity(t *testing.T) {
	// The digest of the empty input, as npm writes it.
	const empty = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
	if err := checkIntegrity(nil, empty); err != nil {
		t.Errorf("ok/empty: %v", err)
	}
	if err := checkIntegrity([]byte("x"), empty); err == nil {
		t.Error("fail/mismatch: accepted")
	}
	if err := checkIntegrity(nil, "sha1-2jmj7l5rSw0yVb/vlWAYkK/YBwk="); err == nil {
		t.Error("fail/sha1: accepted")
	}
}

func TestExtract(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range map[string]string{"package/README.md": "readme", axeScript: "window.axe = {};"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := extract(buf.Bytes(), axeScript)
	if err != nil || string(got) != "window.axe = {};" {
		t.Errorf("ok/found: %q, %v", got, err)
	}
	if _, err := extract(buf.Bytes(), "package/other.js"); err == nil {
		t.Error("fail/missing: no error")
	}
	if _, err := extract([]byte("not gzip"), axeScript); err == nil {
		t.Error("fail/not-gzip: no error")
	}
}
