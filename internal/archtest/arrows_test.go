package archtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this module's path.
const module = "github.com/mandate-dev/mandate"

// arrow says that the packages matched by from may import the packages
// matched by each of to, and why. A pattern is a package's path in the
// module, or "path/..." for it and every package below it.
type arrow struct {
	from string
	to   []string
	why  string
}

// arrows is the architecture: every import from one package of the module
// to another is one of these. docs/architecture.md shows the same table
// ("Who may import whom"); TestArchitectureTableInDocs keeps them equal.
func arrows() []arrow {
	return []arrow{
		{"cmd/mandate", []string{"internal/cli"}, "the binary is its commands"},
		{"cmd/mandate-bench", []string{"cmd/mandate-bench/internal/..."}, "the load tool is its own command, out of the product"},
		{"cmd/mandate-bench/internal/bench", []string{"cmd/mandate-bench/internal/loadgen", "internal/cli", "internal/config", "internal/server", "oauth", "verify", "verify/feed"}, "it starts `mandate serve` from its own binary and measures the server, the verifier and the feed"},
		{"cmd/mandate-bench/internal/bench", []string{"internal/app", "internal/archive", "internal/audit", "internal/auditlog", "internal/forensics", "internal/store"}, "fill writes an audit log through the store's contract; questions times the forensic reports and the log's verification on it; archive runs one retention pass on it"},
		{"cmd/mandate-bench/internal/loadgen", []string{"oauth"}, "it sends token requests"},
		{"examples/...", []string{"verify"}, "the example APIs are protected by verify, as any API would be"},
		{"examples/mcpserver", []string{"agent", "verify/mcpauth"}, "the example MCP server checks tool calls with mcpauth and hands work on by exchange with the agent SDK"},
		{"examples/mcpserver/cmd/mcpserver", []string{"agent", "examples/mcpserver", "verify/feed", "verify/forward"}, "the example MCP server's command runs it against a Mandate, with its agent for the hand-on, the revocation feed and the audit forwarder"},
		{"internal/cli", []string{"internal/app", "internal/server", "internal/idlemem"}, "serve builds the server through the composition root"},
		{"internal/cli", []string{"internal/config", "internal/provision", "internal/directory", "internal/store", "internal/token"}, "config apply, keys and store commands change the store through the directory and the keyring"},
		{"internal/cli", []string{"internal/audit", "internal/auditchain", "internal/auditlog", "internal/archive", "internal/forensics", "internal/termsafe"}, "the audit commands read, verify and report on the log, escaped"},
		{"internal/cli", []string{"internal/password"}, "users set-password hashes the new password before it is stored"},
		{"internal/cli", []string{"internal/htmlform"}, "the demo plays a person at the sign-in and consent pages as a browser submits them"},
		{"internal/cli", []string{"agent", "examples/...", "verify", "verify/forward"}, "the demo plays the stories with the agent SDK and the example APIs"},
		{"internal/app", []string{"internal/archive", "internal/audit", "internal/auditlog", "internal/clientauth", "internal/config", "internal/directory", "internal/exchange", "internal/feed", "internal/policy", "internal/ratelimit", "internal/server", "internal/store/...", "internal/token", "internal/tokenstate", "jwks"}, "the composition root wires every part, once"},
		{"internal/cli", []string{"internal/buildinfo"}, "mandate version says which build it is"},
		{"internal/server", []string{"internal/buildinfo"}, "/healthz says which build answers"},
		{"internal/app", []string{"internal/buildinfo"}, "spans say which build made them (service.version)"},
		{"internal/server", []string{"internal/directory"}, "every change to people, agents and delegations goes through the directory"},
		{"internal/server", []string{"internal/exchange", "internal/clientauth", "internal/token", "internal/tokenstate", "internal/feed", "internal/forensics", "internal/ratelimit"}, "HTTP in front of the grants, client authentication, tokens, revocation and reports"},
		{"internal/server", []string{"internal/audit", "internal/auditchain", "internal/auditlog", "internal/store"}, "it records, serves and checkpoints the log and reads the store"},
		{"internal/server", []string{"oauth", "actor", "revocation", "strictjson", "verify"}, "the wire vocabulary; verify.Record is the record verifiers send"},
		{"internal/config", []string{"internal/directory", "internal/policy", "internal/store"}, "the file follows the directory's rules and its policies compile when it loads"},
		{"internal/upstream", []string{"internal/config", "internal/directory"}, "sign-in at an OpenID Connect provider follows the file's login section; the id it makes follows the directory's rule"},
		{"internal/provision", []string{"internal/config", "internal/directory", "internal/clientauth", "internal/store"}, "the file's users, agents and delegations are written through the directory"},
		{"internal/directory", []string{"internal/store", "internal/audit", "internal/auditchain", "internal/clientauth", "actor", "strictjson"}, "each write with its audit record; secrets hashed as client authentication checks them"},
		{"internal/directory", []string{"internal/password"}, "a password hash is stored only if sign-in can check it"},
		{"internal/exchange", []string{"internal/token", "internal/tokenstate", "internal/policy", "internal/audit", "internal/store", "actor", "oauth", "strictjson"}, "a grant checks presented tokens, policy and revocation, signs, and records"},
		{"internal/signin", []string{"internal/audit", "internal/auditchain", "internal/authorize", "internal/directory", "internal/exchange", "internal/password", "internal/ratelimit", "internal/store", "oauth"}, "sessions, passwords, approvals and the code and refresh grants: delegations through the directory, tokens through the grants"},
		{"internal/server", []string{"internal/authorize", "internal/pages", "internal/signin"}, "people's pages: the authorization endpoint, sign-in, consent and My agents"},
		{"internal/server", []string{"internal/picture"}, "the staff pages draw delegation chains and refusal rates"},
		{"internal/app", []string{"internal/pages", "internal/signin"}, "it wires people's sign-in and the pages"},
		{"internal/upstream/upstreamtest", []string{"internal/config"}, "the test provider hands out login sections for the tests of sign-in through it"},
		{"internal/signin", []string{"internal/upstream"}, "a sign-in at a company's provider is kept, finished there and turned into a person, and the person rechecked there"},
		{"internal/server", []string{"internal/upstream"}, "the sign-in page lists the company's providers and sends people to them"},
		{"internal/app", []string{"internal/upstream"}, "it builds the company's identity providers people sign in through"},
		{"internal/cimd", []string{"internal/directory", "jwks", "strictjson"}, "a client's metadata document is read strictly; its redirect URIs follow the directory's rule, its keys the key sets'"},
		{"internal/server", []string{"internal/cimd"}, "an https client_id is fetched as its metadata document at the authorization endpoint"},
		{"internal/app", []string{"internal/cimd"}, "it builds the metadata document fetcher"},
		{"internal/registration", []string{"internal/cimd"}, "a metadata document's client is admitted as the registration policy says"},
		{"internal/authorize", []string{"oauth"}, "an authorization request is checked before a person sees it; a code's verifier at the token endpoint"},
		{"internal/authorize", []string{"internal/resource"}, "a request's resource must be a registered one that allows the client"},
		{"internal/exchange", []string{"internal/resource"}, "a token for a registered resource goes only to a client it allows, with its canonical URI as aud"},
		{"internal/server", []string{"internal/resource"}, "the consent page names a registered resource; discovery lists its scopes"},
		{"internal/config", []string{"internal/resource"}, "the file's resources become the registry the grants and the server check"},
		{"internal/forensics", []string{"internal/audit", "internal/exchange", "internal/store"}, "questions asked of the log's records"},
		{"internal/clientauth", []string{"internal/token", "internal/store", "jwks", "jwt", "oauth"}, "client secrets and private_key_jwt assertions"},
		{"internal/registration", []string{"internal/directory", "internal/store", "oauth"}, "a client registers itself through the directory, within the policy"},
		{"internal/server", []string{"internal/registration"}, "POST /register in front of Dynamic Client Registration"},
		{"internal/app", []string{"internal/registration"}, "it builds the registrar from the file's registration section"},
		{"internal/token", []string{"verify", "jwks", "jwt", "actor", "oauth", "internal/store"}, "Mandate's own tokens are checked by the same code as every API's (verify.CheckJWS)"},
		{"internal/tokenstate", []string{"internal/store", "oauth", "revocation"}, "whether an issued token is in force, from the store and the feed"},
		{"internal/feed", []string{"internal/store", "revocation"}, "the feed follows the store's entries"},
		{"internal/audit", []string{"internal/auditchain", "internal/store"}, "records are committed with the store, chained"},
		{"internal/auditlog", []string{"internal/auditchain", "internal/store"}, "checkpoints sign the chain the store keeps"},
		{"internal/archive", []string{"internal/auditchain", "internal/auditlog", "internal/store"}, "old records move to segments that end in signed checkpoints and verify with the live log"},
		{"internal/auditchain", []string{"internal/store"}, "it encodes the store's records"},
		{"internal/store/...", []string{"internal/store/...", "internal/auditchain", "revocation"}, "the backends implement the contract, chain records and derive feed entries"},
		{"internal/picture", []string{"internal/termsafe"}, "the pictures show caller text escaped as the tables do: controls, bidi and invalid UTF-8 made visible"},
		{"verify", []string{"actor", "jwks", "jwt", "oauth", "strictjson", "verify/internal/clean"}, "what an API needs to check a request, and nothing that touches the file system"},
		{"verify/feed", []string{"verify", "revocation", "strictjson", "verify/internal/backchannel"}, "the revocation feed client implements verify.Revocation"},
		{"verify/forward", []string{"verify", "verify/internal/..."}, "the audit forwarder implements verify.RecordSink"},
		{"verify/mcpauth", []string{"verify"}, "the MCP adapter puts the official Go SDK's servers behind verify, tool by tool"},
		{"verify/internal/...", []string{"jwks", "revocation", "verify/feed"}, "what verify's sub-packages share, and their tests' feed server"},
		{"agent", []string{"jwks", "oauth"}, "an agent exchanges tokens"},
		{"jwt", []string{"actor", "strictjson"}, "the JOSE gate parses the act claim strictly"},
		{"jwks", []string{"strictjson"}, "key sets are parsed strictly"},
		{"actor", []string{"strictjson"}, "the act claim is parsed strictly"},
	}
}

// bans are standard-library imports some packages may never make directly.
func bans() []struct{ pkg, imp, why string } {
	return []struct{ pkg, imp, why string }{
		{"internal/exchange", "net/http", "the grants know no transport"},
		{"internal/policy", "net/http", "policies decide on values, not requests"},
		{"internal/directory", "net/http", "the domain core is called by HTTP, pages and commands alike"},
		{"internal/store/...", "net/http", "storage knows no transport"},
		{"internal/picture", "text/template", "caller text in a picture is escaped by html/template; text/template escapes nothing"},
		{"verify", "os", "the library an API imports touches no file system"},
		{"verify", "path/filepath", "the library an API imports touches no file system"},
		{"verify", "database/sql", "the library an API imports holds no database"},
	}
}

// matches reports whether pkg (relative to the module) matches pattern.
func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// imports lists, per package of the module (relative path), its direct
// imports: those of the module (relative) and those of the standard
// library, from `go list -deps` over the whole module (tests excluded).
func imports(t *testing.T) map[string][]string {
	t.Helper()
	// Reading the sources themselves makes go test's cache of this test
	// depend on them, as it cannot see what go list reads.
	_ = packages(t)
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = repoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || (f[0] != module && !strings.HasPrefix(f[0], module+"/")) {
			continue
		}
		from := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		graph[from] = []string{}
		for _, imp := range f[1:] {
			graph[from] = append(graph[from], strings.TrimPrefix(imp, module+"/"))
		}
	}
	return graph
}

// inModule reports whether an import (as imports gives it) is a package
// of the module.
func inModule(graph map[string][]string, imp string) bool {
	_, ok := graph[imp]
	return ok
}

// TestImportArrows: every import from one package of the module to another
// is an arrow of the table, every arrow of the table is used, and no
// package makes a banned standard-library import.
func TestImportArrows(t *testing.T) {
	graph := imports(t)
	used := map[string]bool{}
	for from, imps := range graph {
		for _, to := range imps {
			if !inModule(graph, to) {
				continue
			}
			allowed := false
			for _, a := range arrows() {
				if !matches(a.from, from) {
					continue
				}
				for _, p := range a.to {
					if matches(p, to) {
						allowed = true
						used[a.from+" -> "+p] = true
					}
				}
			}
			if !allowed && !(from == to || matches(from+"/...", to) && strings.Contains(to, "/internal/")) {
				t.Errorf("%s imports %s: no arrow in the architecture allows it (internal/archtest/arrows_test.go and docs/architecture.md); add one with its reason, or do without", from, to)
			}
		}
	}
	for _, a := range arrows() {
		for _, p := range a.to {
			if !used[a.from+" -> "+p] {
				t.Errorf("the arrow %s -> %s is not used by any import: remove it from the table", a.from, p)
			}
		}
	}
	for _, b := range bans() {
		for from, imps := range graph {
			if matches(b.pkg, from) && slices.Contains(imps, b.imp) {
				t.Errorf("%s imports %s: %s", from, b.imp, b.why)
			}
		}
	}
}

// TestArchitectureTableInDocs: docs/architecture.md shows the arrows
// table as it is here, row for row.
func TestArchitectureTableInDocs(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "## Who may import whom"):
			in = true
		case in && strings.HasPrefix(line, "## "):
			in = false
		case in && strings.HasPrefix(line, "| `"):
			rows = append(rows, line)
		}
	}
	var want []string
	for _, a := range arrows() {
		want = append(want, tableRow(a))
	}
	if !slices.Equal(rows, want) {
		t.Errorf("docs/architecture.md's table \"Who may import whom\" differs from internal/archtest's arrows; it should read:\n%s", strings.Join(want, "\n"))
	}
}

// tableRow is a as a row of the table in docs/architecture.md.
func tableRow(a arrow) string {
	to := make([]string, len(a.to))
	for i, p := range a.to {
		to[i] = "`" + p + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s |", a.from, strings.Join(to, ", "), a.why)
}
