package picture

import (
	"html/template"
	"strings"
	"testing"

	"github.com/mandate-dev/mandate/internal/golden"
)

// goldenCases are the pictures kept under testdata/golden, one file each,
// and together in preview.html to look at in a browser:
//
//	go test ./internal/picture -run Golden -update
func goldenCases() []struct {
	name string
	svg  template.HTML
} {
	long := []Hop{{ID: "user:sam", Kind: KindPerson, Granted: true}}
	for _, id := range []string{"planner", "infrabot", "deployer", "checker", "notifier", "mailer", "archiver", "auditor", "indexer", "summariser", "reporter"} {
		long = append(long, Hop{ID: "agent:" + id, Kind: KindAgent, Scopes: []string{"deploy:read"}, Audience: "https://deploy.example", Granted: true})
	}
	long[len(long)-1].Granted = false
	return []struct {
		name string
		svg  template.HTML
	}{
		{name: "chain-three-hops", svg: Chain("Token 7f3a: agent:reporter asked for deploy:delete", threeHops())},
		{name: "chain-long-texts", svg: Chain("", []Hop{
			{ID: "user:" + strings.Repeat("a-person-with-a-very-long-name-", 3), Kind: KindPerson, Granted: true},
			{ID: "agent:<script>alert(1)</script>", Kind: KindAgent, Granted: true, Audience: "https://api.example/" + strings.Repeat("path/", 30),
				Scopes: []string{"deploy:create", "deploy:read", "monitoring:read", "expenses:submit", "expenses:approve", "calendar:write", "mail:send", "files:read", "files:write", "admin:everything", strings.Repeat("x", 70)}},
			{ID: `"onload="alert(1)`, Kind: "robot\u202e", Scopes: []string{"a&b"}},
		})},
		{name: "chain-twelve-hops", svg: Chain("A chain longer than is drawn", long)},
		{name: "chain-empty", svg: Chain("No chain", nil)},
		{name: "bars", svg: RefusalBars("Refusals per agent, last 7 days", []Bar{
			{Label: "agent:infrabot", Refused: 3, Total: 120},
			{Label: "agent:reporter", Refused: 41, Total: 57},
			{Label: "agent:idle", Refused: 0, Total: 0},
			{Label: "agent:never-refused", Refused: 0, Total: 900},
			{Label: "agent:always-refused", Refused: 12, Total: 12},
			{Label: "agent:almost-never", Refused: 1, Total: 5000},
			{Label: "agent:with-a-label-far-too-long-to-fit-beside-its-counts", Refused: 9999, Total: 10000},
			{Label: "agent:broken <b>", Refused: 5, Total: 3},
		})},
		{name: "bars-versions", svg: RefusalBars("agent:infrabot by version", []Bar{
			{Label: "v1.4.0", Refused: 2, Total: 400},
			{Label: "v1.5.0", Refused: 37, Total: 410},
			{Label: "v1.5.1", Refused: 4, Total: 388},
		})},
		{name: "bars-empty", svg: RefusalBars("", nil)},
	}
}

func TestGoldenPictures(t *testing.T) {
	var preview strings.Builder
	preview.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>internal/picture golden pictures</title></head>\n" +
		"<body style=\"font-family: sans-serif; display: grid; grid-template-columns: 1fr 1fr; gap: 1rem\">\n" +
		"<h1 style=\"grid-column: 1 / 3\">On a light page (left) and a dark one (right)</h1>\n")
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			root := parse(t, tc.svg)
			if err := checkShape(root); err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, "testdata/golden/"+tc.name+".svg", []byte(string(tc.svg)+"\n"))
		})
		for _, page := range []string{"background: #fff; color: #111", "background: #111; color: #eee"} {
			preview.WriteString("<section style=\"" + page + "; padding: 1rem\"><h2>" + tc.name + "</h2>\n" + string(tc.svg) + "\n</section>\n")
		}
	}
	preview.WriteString("</body></html>\n")
	golden.Compare(t, "testdata/golden/preview.html", []byte(preview.String()))
}
