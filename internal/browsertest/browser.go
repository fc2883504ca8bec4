package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// DefaultTimeout is how long one step of a Browser (a navigation, a click
// and the page it loads, a read) may take before the test fails. It is
// generous because CI runs the browser on two shared cores.
const DefaultTimeout = 30 * time.Second

// startTimeout is how long Chromium may take to start.
const startTimeout = time.Minute

// installHint is the skip reason when no Chromium is found; one line, the
// same for every test, so that the test command's summary counts them
// under one reason.
const installHint = "browser tests need Chromium: apt-get install chromium, or set MANDATE_CHROMIUM to its path"

// Browser is one headless Chromium with one tab, for one test. Its methods
// fail the test on any error and are not safe for concurrent use.
type Browser struct {
	// Timeout bounds each step; New sets it to DefaultTimeout.
	Timeout time.Duration

	ctx      context.Context // the tab's context; the browser lives as long as it
	cancel   context.CancelFunc
	output   *lockedBuffer // Chromium's stdout and stderr
	response *Response     // the main document of the last page loaded
	axe      []byte        // axe.min.js, read once per Browser
}

// Response is the main document's HTTP response of the page a Browser
// loaded last.
type Response struct {
	URL    string
	Status int
	// Header holds the response's headers as Chromium saw them (it leaves
	// out Set-Cookie; read the cookies with Browser.Cookies).
	Header http.Header
}

// Cookie is a cookie the browser holds for the current page, with the
// flags a test checks.
type Cookie struct {
	Name, Value  string
	Domain, Path string
	Secure       bool
	HTTPOnly     bool
	// SameSite is "Strict", "Lax", "None" or "" when the cookie set none.
	SameSite string
	// Session reports a cookie without Expires or Max-Age.
	Session bool
	// Expires is zero for a session cookie.
	Expires time.Time
}

// New starts a headless Chromium for t and closes it when t ends. It finds
// the browser at MANDATE_CHROMIUM, then /usr/bin/chromium, then
// chromium-browser or chromium on PATH. Without one it skips t, saying how
// to get one, unless CI=true, where a browser test must run and t fails.
// Chromium runs without a sandbox (CI runs as root), without a GPU, QUIC,
// background networking, component updates or sync, on a fresh profile
// in a temporary directory, and accepts any certificate (for
// httptest.NewTLSServer).
func New(t *testing.T) *Browser {
	t.Helper()
	path, err := findChromium()
	if err != nil {
		unavailable(t, err.Error())
	}
	profile := t.TempDir() // removed after Close, which is registered later
	output := &lockedBuffer{}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		// Tests serve pages from httptest.NewTLSServer, whose certificate
		// no one issued.
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(output),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	logs := &testLog{t: t}
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(logs.logf), chromedp.WithErrorf(logs.logf), chromedp.WithDebugf(func(string, ...any) {}))
	b := &Browser{Timeout: DefaultTimeout, ctx: ctx, output: output}
	b.cancel = func() {
		logs.stop()
		// Close the browser gracefully, then make sure its process is gone.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		allocCancel()
	}
	t.Cleanup(b.Close)

	// The first Do starts the browser and binds it to ctx, so it may carry
	// no deadline of its own: a timer cancels it instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		b.Close()
		err = <-started
		if err == nil {
			err = errors.New("timed out")
		}
	}
	if err != nil {
		t.Fatalf("browsertest: starting %s: %v\n%s", path, err, tail(output.String(), 2000))
	}
	return b
}

// Close closes the browser and waits for its process to end. New registers
// it with t.Cleanup; calling it again does nothing.
func (b *Browser) Close() {
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
}

// findChromium is the browser's path: MANDATE_CHROMIUM, /usr/bin/chromium,
// then chromium-browser or chromium on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("MANDATE_CHROMIUM"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("MANDATE_CHROMIUM=%s is not an executable file; %s", p, installHint)
		}
		return p, nil
	}
	if isExecutable("/usr/bin/chromium") {
		return "/usr/bin/chromium", nil
	}
	for _, name := range []string{"chromium-browser", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New(installHint)
}

// isExecutable reports whether path is a regular file someone may run.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// unavailable skips t for a missing tool or download, or fails it in CI
// (CI=true), where every browser test must run.
func unavailable(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a browser test may not be skipped)", reason)
	}
	t.Skip(reason)
}

// step runs one action on the tab within the Browser's timeout.
func step[T any](b *Browser, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// load runs actions that load a page, waits for it and keeps its main
// document's response.
func (b *Browser) load(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("browsertest: %s: no page loaded within %v (did it navigate at all?): %v", what, b.Timeout, err)
		}
		t.Fatalf("browsertest: %s: %v", what, err)
	}
	b.response = toResponse(resp)
}

// toResponse turns the protocol's response into a Response. The protocol
// joins repeated headers with newlines.
func toResponse(r *network.Response) *Response {
	if r == nil {
		return nil
	}
	h := http.Header{}
	for k, v := range r.Headers {
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		for _, line := range strings.Split(s, "\n") {
			h.Add(k, line)
		}
	}
	return &Response{URL: r.URL, Status: int(r.Status), Header: h}
}

// Navigate loads url and waits for it to load.
func (b *Browser) Navigate(t *testing.T, url string) {
	t.Helper()
	b.load(t, "navigate to "+url, chromedp.Navigate(url))
}

// Click clicks the first element matching the CSS selector and waits for
// the page the click loads: use it for links and submit buttons. A click
// that loads nothing fails after the timeout; for a checkbox use Check or
// Uncheck.
func (b *Browser) Click(t *testing.T, selector string) {
	t.Helper()
	b.load(t, "click "+selector, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible))
}

// ClickText clicks the visible link, button or submit input whose text (a
// button's value for an input) is text, spaces trimmed and collapsed, and
// waits for the page the click loads.
func (b *Browser) ClickText(t *testing.T, text string) {
	t.Helper()
	b.load(t, fmt.Sprintf("click %q", text), chromedp.Click(chromedp.Search(byText(text)), chromedp.NodeVisible))
}

// byText is an XPath finding the links, buttons and submit inputs labelled
// text.
func byText(text string) string {
	lit := xpathLiteral(text)
	return fmt.Sprintf(`//a[normalize-space(.)=%[1]s] | //button[normalize-space(.)=%[1]s] | //input[(@type="submit" or @type="button") and normalize-space(@value)=%[1]s]`, lit)
}

// xpathLiteral quotes s for XPath 1.0, which has no escapes: a string
// holding both quote characters is built with concat.
func xpathLiteral(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	switch {
	case !strings.Contains(s, `"`):
		return `"` + s + `"`
	case !strings.Contains(s, `'`):
		return `'` + s + `'`
	}
	parts := strings.Split(s, `"`)
	for i, p := range parts {
		parts[i] = `"` + p + `"`
	}
	return "concat(" + strings.Join(parts, `, '"', `) + ")"
}

// Type clears the field matching the CSS selector and types text into it
// key by key, as a person would.
func (b *Browser) Type(t *testing.T, selector, text string) {
	t.Helper()
	sel := chromedp.CSS(selector)
	if _, err := step(b, chromedp.Steps(chromedp.Clear(sel, chromedp.NodeVisible), chromedp.SendKeys(sel, text, chromedp.NodeVisible))); err != nil {
		t.Fatalf("browsertest: type into %s: %v", selector, err)
	}
}

// SetValue sets the value of the field matching the CSS selector at once
// (a select's option, a field no person types in).
func (b *Browser) SetValue(t *testing.T, selector, value string) {
	t.Helper()
	if _, err := step(b, chromedp.SetValue(chromedp.CSS(selector), value, chromedp.NodeReady)); err != nil {
		t.Fatalf("browsertest: set %s: %v", selector, err)
	}
}

// Check makes sure the checkbox matching the CSS selector is checked,
// clicking it when it is not.
func (b *Browser) Check(t *testing.T, selector string) {
	t.Helper()
	b.setChecked(t, selector, true)
}

// Uncheck makes sure the checkbox matching the CSS selector is unchecked,
// clicking it when it is checked.
func (b *Browser) Uncheck(t *testing.T, selector string) {
	t.Helper()
	b.setChecked(t, selector, false)
}

func (b *Browser) setChecked(t *testing.T, selector string, want bool) {
	t.Helper()
	sel := chromedp.CSS(selector)
	checked, err := step(b, chromedp.JavascriptAttribute[bool](sel, "checked", chromedp.NodeVisible))
	if err == nil && checked != want {
		_, err = step(b, chromedp.Click(sel, chromedp.NodeVisible))
	}
	if err == nil {
		checked, err = step(b, chromedp.JavascriptAttribute[bool](sel, "checked", chromedp.NodeReady))
	}
	switch {
	case err != nil:
		t.Fatalf("browsertest: set %s checked=%v: %v", selector, want, err)
	case checked != want:
		t.Fatalf("browsertest: %s: clicked, and it is still checked=%v", selector, checked)
	}
}

// submitJS submits the form of the element given (or the form itself) as
// pressing Enter would: the form is validated and its submit event fires;
// a submit button is sent as the submitter, with its name and value.
const submitJS = `(sel) => {
	const el = document.querySelector(sel);
	if (!el) return "no element matches";
	const form = el.tagName === "FORM" ? el : el.form;
	if (!form) return "the element is in no form";
	if (el !== form && el.type === "submit") form.requestSubmit(el); else form.requestSubmit();
	return "";
}`

// Submit submits the form matching the CSS selector, or the form of the
// field or button matching it, and waits for the page it loads. A form
// that refuses to submit (a required field left empty) fails the test
// after the timeout.
func (b *Browser) Submit(t *testing.T, selector string) {
	t.Helper()
	arg, err := json.Marshal(selector)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		msg, err := chromedp.Evaluate[string]("("+submitJS+")("+string(arg)+")")(ctx, tg)
		if err == nil && msg != "" {
			err = errors.New(msg)
		}
		return chromedp.Void{}, err
	}
	b.load(t, "submit "+selector, chromedp.WaitReady(chromedp.CSS(selector)), submit)
}

// Text is the visible text of the first element matching the CSS
// selector, spaces trimmed.
func (b *Browser) Text(t *testing.T, selector string) string {
	t.Helper()
	s, err := step(b, chromedp.Text(chromedp.CSS(selector), chromedp.NodeReady))
	if err != nil {
		t.Fatalf("browsertest: text of %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

// Exists reports whether an element matches the CSS selector now, without
// waiting for one.
func (b *Browser) Exists(t *testing.T, selector string) bool {
	t.Helper()
	arg, err := json.Marshal(selector)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := step(b, chromedp.Evaluate[bool]("document.querySelector("+string(arg)+") !== null"))
	if err != nil {
		t.Fatalf("browsertest: look for %s: %v", selector, err)
	}
	return ok
}

// URL is the current page's address.
func (b *Browser) URL(t *testing.T) string {
	t.Helper()
	u, err := step(b, chromedp.Location())
	if err != nil {
		t.Fatalf("browsertest: current URL: %v", err)
	}
	return u
}

// Response is the main document's response of the page the Browser loaded
// last (by Navigate, Click, ClickText or Submit): its status and headers,
// to check Content-Security-Policy, X-Frame-Options and the like. It fails
// the test when no page was loaded yet.
func (b *Browser) Response(t *testing.T) *Response {
	t.Helper()
	if b.response == nil {
		t.Fatal("browsertest: no page loaded yet")
	}
	return b.response
}

// Cookies are the cookies the browser would send to the current page.
func (b *Browser) Cookies(t *testing.T) []Cookie {
	t.Helper()
	res, err := step(b, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
	})
	if err != nil {
		t.Fatalf("browsertest: cookies: %v", err)
	}
	cookies := make([]Cookie, 0, len(res.Cookies))
	for _, c := range res.Cookies {
		k := Cookie{
			Name: c.Name, Value: c.Value, Domain: c.Domain, Path: c.Path,
			Secure: c.Secure, HTTPOnly: c.HTTPOnly, SameSite: string(c.SameSite), Session: c.Session,
		}
		if !c.Session && c.Expires > 0 {
			k.Expires = time.Unix(0, int64(c.Expires*float64(time.Second)))
		}
		cookies = append(cookies, k)
	}
	return cookies
}

// Cookie is the cookie named name that the browser would send to the
// current page, or nil.
func (b *Browser) Cookie(t *testing.T, name string) *Cookie {
	t.Helper()
	for _, c := range b.Cookies(t) {
		if c.Name == name {
			return &c
		}
	}
	return nil
}

// Screenshot saves the whole page as PNG in the screenshots folder (the
// repository's screenshots/, or MANDATE_SCREENSHOTS; a relative path there
// is taken from the repository's root) as <test>-<name>.png, and returns
// the file's path.
func (b *Browser) Screenshot(t *testing.T, name string) string {
	t.Helper()
	png, err := step(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	dir, err := screenshotDir()
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("browsertest: screenshot folder: %v", err)
	}
	path := filepath.Join(dir, fileName(t.Name())+"-"+fileName(name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	t.Logf("screenshot %s", path)
	return path
}

// screenshotDir is MANDATE_SCREENSHOTS, or screenshots/ at the
// repository's root.
func screenshotDir() (string, error) {
	dir := os.Getenv("MANDATE_SCREENSHOTS")
	if filepath.IsAbs(dir) {
		return dir, nil
	}
	if dir == "" {
		dir = "screenshots"
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, dir), nil
}

// repoRoot is the nearest folder above the working directory (a test's
// package) that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// unsafeName is what a file name may not hold.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName makes s (a test's name, with slashes for subtests) a file name.
func fileName(s string) string {
	return strings.Trim(unsafeName.ReplaceAllString(s, "_"), "_.")
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// lockedBuffer collects Chromium's output, written from chromedp's
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testLog passes chromedp's messages to the test's log until the browser
// closes: logging to a test that has ended panics.
type testLog struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (l *testLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("chromedp: "+format, args...)
	}
}

func (l *testLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}
