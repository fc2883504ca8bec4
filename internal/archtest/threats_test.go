package archtest

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestThreatCatalogueMapped: docs/threats.md has one row for each case of
// the threat catalogue, T01 to T104, in order, and every test it names is a
// test function in that package's _test.go files, with the sub-case name,
// when one is given, written in that package's tests. A case cannot be
// claimed by a test that does not exist, and a renamed test breaks this
// test rather than the table silently.
// catalogueCases is the number of cases in the threat catalogue.
const catalogueCases = 104

func TestThreatCatalogueMapped(t *testing.T) {
	// A row of the table: the case, then the cells.
	threatRow := regexp.MustCompile(`^\| (T\d{2,3}) \|(.*)\|\s*$`)
	// A test named in it: `dir.TestName` or `dir.TestName/sub/case`, dir
	// relative to the module root.
	testRef := regexp.MustCompile("`([a-z0-9_./-]+)\\.((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)(/[^`]*)?`")
	root := repoRoot(t)
	f, err := os.Open(filepath.Join(root, "docs", "threats.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []string
	funcs := map[string]map[string]bool{} // dir → test functions
	sources := map[string]string{}        // dir → its _test.go text
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := threatRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		cases = append(cases, m[1])
		cells := strings.Split(m[2], "|")
		if len(cells) < 3 {
			t.Errorf("%s: want the columns what, tests and status", m[1])
			continue
		}
		status := strings.TrimSpace(cells[len(cells)-1])
		refs := testRef.FindAllStringSubmatch(cells[len(cells)-2], -1)
		if strings.HasPrefix(status, "covered") && len(refs) == 0 {
			t.Errorf("%s is marked covered but names no test", m[1])
		}
		for _, ref := range refs {
			dir, name, sub := ref[1], ref[2], strings.TrimPrefix(ref[3], "/")
			if _, ok := funcs[dir]; !ok {
				funcs[dir], sources[dir] = testFuncs(t, filepath.Join(root, filepath.FromSlash(dir)))
			}
			if !funcs[dir][name] {
				t.Errorf("%s names %s.%s, which is not a test function in %s", m[1], dir, name, dir)
				continue
			}
			if sub != "" && !strings.Contains(sources[dir], `"`+sub+`"`) {
				t.Errorf("%s names %s.%s/%s, but no test in %s has a case named %q", m[1], dir, name, sub, dir, sub)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= catalogueCases; i++ {
		want := fmt.Sprintf("T%02d", i)
		if i > len(cases) || cases[i-1] != want {
			t.Fatalf("docs/threats.md: row %d is %v, want %s (one row per case, in order; rows: %v)", i, at(cases, i-1), want, cases)
		}
	}
	if len(cases) != catalogueCases {
		t.Errorf("docs/threats.md has %d rows, want %d", len(cases), catalogueCases)
	}
}

// testFuncs returns the Test, Fuzz and Benchmark functions of the _test.go
// files in dir, and their text.
func testFuncs(t *testing.T, dir string) (map[string]bool, string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var text strings.Builder
	fset := token.NewFileSet()
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(src)
		file, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
				out[fn.Name.Name] = true
			}
		}
	}
	return out, text.String()
}

func at(xs []string, i int) string {
	if i < len(xs) {
		return xs[i]
	}
	return "missing"
}
