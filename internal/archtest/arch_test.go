package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// packages parses every non-test Go package under the root.
func packages(t *testing.T) map[string][]*ast.File {
	t.Helper()
	root := repoRoot(t)
	pkgs := make(map[string][]*ast.File)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkgs[filepath.ToSlash(rel)] = append(pkgs[filepath.ToSlash(rel)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, files := range packages(t) {
		documented := false
		for _, f := range files {
			if f.Doc != nil && len(strings.TrimSpace(f.Doc.Text())) > 0 {
				documented = true
			}
		}
		if !documented {
			t.Errorf("package %s has no package doc comment (add a doc.go saying what it owns)", dir)
		}
	}
}

// TestPublicPackagesImportNoInternal: a public package never reaches into
// the server's internal packages. It may use the internal packages of its
// own public tree (verify/internal/… for verify and its sub-packages),
// which ship with it.
func TestPublicPackagesImportNoInternal(t *testing.T) {
	for dir, files := range packages(t) {
		if strings.HasPrefix(dir, "internal") || strings.HasPrefix(dir, "cmd") || strings.HasPrefix(dir, "examples") {
			continue
		}
		top, _, _ := strings.Cut(dir, "/")
		own := "github.com/mandate-dev/mandate/" + top + "/internal/"
		for _, f := range files {
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				if strings.Contains(path, "/internal/") && !strings.HasPrefix(path, own) {
					t.Errorf("public package %s imports %s", dir, imp.Path.Value)
				}
			}
		}
	}
}

func TestNoBannedPackageNames(t *testing.T) {
	banned := map[string]bool{"util": true, "utils": true, "common": true, "helpers": true, "models": true, "pkg": true}
	for dir := range packages(t) {
		for _, part := range strings.Split(dir, "/") {
			if banned[part] {
				t.Errorf("package path %s uses the catch-all name %q", dir, part)
			}
		}
	}
}

func TestNoInitFunctions(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.Contains(path, "/.") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
				t.Errorf("%s declares init(): wire dependencies explicitly instead", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
