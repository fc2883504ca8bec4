// Package pages renders Mandate's pages for people (sign-in, consent, My
// agents) and for administrators and auditors (Agents, Audit) with
// html/template, one small stylesheet and no JavaScript, and sets the
// headers every page carries. It knows nothing of sessions or the store:
// handlers pass it what to show.
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed mandate.css
var stylesheet []byte

// StylesheetPath is where the server serves Stylesheet.
const StylesheetPath = "/static/mandate.css"

// Stylesheet is the one stylesheet of every page.
func Stylesheet() []byte { return stylesheet }

// Renderer renders the pages. It is safe for concurrent use.
type Renderer struct {
	pages map[string]*template.Template
}

// funcs are the helpers the templates use.
var funcs = template.FuncMap{
	"join": strings.Join,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

// New parses the templates: each page is layout.html with the page's own
// file.
func New() (*Renderer, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	r := &Renderer{pages: map[string]*template.Template{}}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("pages: %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Page is what every page shows around its content.
type Page struct {
	// Title is the page's title, after "Mandate: ".
	Title string
	// Person is the signed-in person, empty when nobody is.
	Person string
	// Admin and Auditor say which of the staff pages the person may open.
	Admin, Auditor bool
	// CSRF is the session's anti-forgery token, for the forms.
	CSRF string
	// Data is the page's own content.
	Data any
}

// Headers sets the headers every page carries: no framing, no referrer,
// no caching, a content security policy that allows this server's
// stylesheet and forms only. formTargets are the origins a form on the
// page may lead to besides this server (the consent page's redirect to
// the application).
func Headers(w http.ResponseWriter, formTargets ...string) {
	h := w.Header()
	action := "'self'"
	for _, t := range formTargets {
		action += " " + t
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action "+action+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// Render writes page name with status. It renders into a buffer first, so
// that a template error is a 500 and never half a page.
func (r *Renderer) Render(w http.ResponseWriter, status int, name string, p Page, formTargets ...string) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("pages: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		return fmt.Errorf("pages: render %s: %w", name, err)
	}
	Headers(w, formTargets...)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
