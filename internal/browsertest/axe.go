package browsertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The axe-core release the accessibility check runs: its npm tarball and
// the registry's dist.integrity for it. To move to another release, take
// both from `npm view axe-core@VERSION dist`.
const (
	axeVersion   = "4.14.1"
	axeTarball   = "https://registry.npmjs.org/axe-core/-/axe-core-" + axeVersion + ".tgz"
	axeIntegrity = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
	// axeScript is the file of the tarball the check injects.
	axeScript = "package/axe.min.js"
	// maxTarball bounds the download and each read from it.
	maxTarball = 32 << 20
)

// ErrAxeUnavailable is wrapped by Audit's error when axe-core could be
// neither read from the cache nor downloaded.
var ErrAxeUnavailable = errors.New("axe-core unavailable")

// Violation is one axe-core rule the page breaks.
type Violation struct {
	// Rule is axe-core's rule id, such as "image-alt".
	Rule string `json:"id"`
	// Impact is "minor", "moderate", "serious" or "critical".
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []Node `json:"nodes"`
}

// Node is one element that breaks a rule.
type Node struct {
	// Target is the CSS selector of the element (for an element in a
	// shadow tree or a frame, the selectors of each level joined by " >>> ").
	Target []string `json:"target"`
	// HTML is the element's opening markup.
	HTML string `json:"html"`
	// Summary is axe-core's account of what to fix.
	Summary string `json:"summary"`
}

// Serious reports whether the violation is serious or critical, the
// impacts CheckAccessibility fails a test on.
func (v Violation) Serious() bool {
	return v.Impact == "serious" || v.Impact == "critical"
}

// String is the violation on one line, its elements' targets after it.
func (v Violation) String() string {
	targets := make([]string, 0, len(v.Nodes))
	for _, n := range v.Nodes {
		targets = append(targets, strings.Join(n.Target, ", "))
	}
	return fmt.Sprintf("%s (%s): %s [%s] at %s", v.Rule, v.Impact, v.Help, v.HelpURL, strings.Join(targets, "; "))
}

// runAxe runs axe-core on the whole document (every rule of the release,
// WCAG and best practices) and keeps of its answer what Violation holds.
const runAxe = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({
	id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
	nodes: v.nodes.map(n => ({
		target: n.target.map(s => Array.isArray(s) ? s.join(" >>> ") : String(s)),
		html: n.html, summary: n.failureSummary || "",
	})),
})))`

// CheckAccessibility runs axe-core on the current page and fails t on any
// serious or critical violation, naming each rule, its help and the
// offending elements; it logs the minor and moderate ones. page names the
// page in those messages. When axe-core cannot be had it skips t, or fails
// it in CI (CI=true).
func (b *Browser) CheckAccessibility(t *testing.T, page string) {
	t.Helper()
	violations, err := b.Audit()
	if errors.Is(err, ErrAxeUnavailable) {
		unavailable(t, err.Error())
	}
	if err != nil {
		t.Fatalf("browsertest: accessibility of %s: %v", page, err)
	}
	report(t, page, violations)
}

// reporter is the part of *testing.T that report uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// report fails r on the serious and critical violations, naming each rule,
// its help and the offending elements, and logs the others.
func report(r reporter, page string, violations []Violation) {
	r.Helper()
	var serious, minor []string
	for _, v := range violations {
		line := "  " + v.String()
		if v.Serious() {
			for _, n := range v.Nodes {
				line += "\n      " + n.HTML
			}
			serious = append(serious, line)
		} else {
			minor = append(minor, line)
		}
	}
	if len(minor) > 0 {
		r.Logf("accessibility of %s: %d minor or moderate violations (axe-core %s):\n%s", page, len(minor), axeVersion, strings.Join(minor, "\n"))
	}
	if len(serious) > 0 {
		r.Errorf("accessibility of %s: %d serious or critical violations (axe-core %s):\n%s", page, len(serious), axeVersion, strings.Join(serious, "\n"))
	}
}

// Audit runs axe-core on the current page and returns every violation,
// whatever its impact. Its error wraps ErrAxeUnavailable when axe-core
// could not be had.
func (b *Browser) Audit() ([]Violation, error) {
	if b.axe == nil {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
		defer cancel()
		src, err := loadAxe(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAxeUnavailable, err)
		}
		b.axe = src
	}
	// Runtime.evaluate runs the script as DevTools would, so a page's
	// Content-Security-Policy does not keep it out.
	inject := chromedp.Evaluate[chromedp.Void](string(b.axe) + "\n;void 0")
	if _, err := step(b, inject); err != nil {
		return nil, fmt.Errorf("injecting axe-core: %w", err)
	}
	found, err := step(b, chromedp.Evaluate[[]Violation](runAxe, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("running axe-core: %w", err)
	}
	return found, nil
}

// loadAxe returns axe.min.js of the pinned release: from the tarball in the
// user's cache folder when it is there and intact, else downloaded from the
// npm registry, checked against axeIntegrity and cached.
func loadAxe(ctx context.Context) ([]byte, error) {
	cache := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cache = filepath.Join(dir, "mandate", "axe-core-"+axeVersion+".tgz")
	}
	if cache != "" {
		if tgz, err := os.ReadFile(cache); err == nil && checkIntegrity(tgz, axeIntegrity) == nil {
			return extract(tgz, axeScript)
		}
	}
	tgz, err := download(ctx, axeTarball)
	if err != nil {
		return nil, err
	}
	if err := checkIntegrity(tgz, axeIntegrity); err != nil {
		return nil, fmt.Errorf("%s: %w", axeTarball, err)
	}
	if cache != "" {
		// A cache that cannot be written only costs a download next time.
		_ = writeAtomic(cache, tgz)
	}
	return extract(tgz, axeScript)
}

// download fetches url, at most maxTarball bytes.
func download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download axe-core %s from the npm registry: %w", axeVersion, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTarball+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if len(body) > maxTarball {
		return nil, fmt.Errorf("download %s: larger than %d bytes", url, maxTarball)
	}
	return body, nil
}

// checkIntegrity checks data against a Subresource Integrity string of
// the form npm's dist.integrity has ("sha512-" and the base64 digest).
func checkIntegrity(data []byte, integrity string) error {
	want, ok := strings.CutPrefix(integrity, "sha512-")
	if !ok {
		return fmt.Errorf("integrity %q: only sha512 is supported", integrity)
	}
	sum := sha512.Sum512(data)
	if got := base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("integrity mismatch: got sha512-%s, want %s", got, integrity)
	}
	return nil
}

// extract reads the file name from the gzipped tarball tgz.
func extract(tgz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("axe-core tarball: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("axe-core tarball: no %s", name)
		}
		if err != nil {
			return nil, fmt.Errorf("axe-core tarball: %w", err)
		}
		if h.Name != name || h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxTarball))
		if err != nil {
			return nil, fmt.Errorf("axe-core tarball: %s: %w", name, err)
		}
		return data, nil
	}
}

// writeAtomic writes data to path through a temporary file in its folder,
// so that a reader never sees half of it.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}
