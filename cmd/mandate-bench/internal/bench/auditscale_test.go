package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/cli"
	"github.com/mandate-dev/mandate/internal/exchange"
	"github.com/mandate-dev/mandate/internal/store/postgres"
)

// TestFillMix checks the filler's mix and links without a store: the
// shares of each kind of record, request ids that are unique, and every
// jti a record uses or hands on issued before it.
func TestFillMix(t *testing.T) {
	const n = 20_000
	f := newFiller(fillPlan{Records: n, People: 500, Agents: 20, Span: 24 * time.Hour, End: time.Now(), Batch: 1000, Seed: 7})
	for f.n < n {
		f.next()
	}
	issued := map[string]bool{}
	ids := map[string]bool{}
	kinds := map[string]int{}
	chains := map[int]int{}
	var last time.Time
	for _, ev := range f.batch.Events {
		kinds[ev.Action]++
		if ev.Time.Before(last) {
			t.Fatalf("record %s at %s, before the one before it", ev.ID, ev.Time)
		}
		last = ev.Time
		if ev.ParentJTI != "" && !issued[ev.ParentJTI] {
			t.Errorf("%s %s: parent %s was not issued before", ev.Action, ev.ID, ev.ParentJTI)
		}
		switch ev.Action {
		case audit.ActionTokenExchange, audit.ActionTokenIssue:
			issued[ev.JTI] = true
			if ev.Action == audit.ActionTokenExchange {
				chains[len(ev.Chain)]++
			}
		case audit.ActionRequest, audit.ActionTokenRevoked:
			if !issued[ev.JTI] {
				t.Errorf("%s %s: token %s was not issued before", ev.Action, ev.ID, ev.JTI)
			}
		case audit.ActionTokenRefused:
			if ev.Reason == "" || ev.AgentVersion == "" {
				t.Errorf("refusal %s without a reason or an agent version", ev.ID)
			}
		}
		if ev.Action == audit.ActionRequest {
			if ids[ev.ID] || ev.ReportedBy == "" || !strings.HasPrefix(ev.Resource, "expense/EXP-") {
				t.Errorf("request record %+v: a repeated id, no reporter or another resource", ev)
			}
			ids[ev.ID] = true
		}
	}
	share := func(action string) float64 { return float64(kinds[action]) / n }
	for _, c := range []struct {
		action   string
		min, max float64
	}{
		{audit.ActionRequest, 0.36, 0.44}, {audit.ActionTokenRefused, 0.08, 0.12},
		{audit.ActionTokenExchange, 0.38, 0.48}, {audit.ActionTokenIssue, 0.02, 0.06},
		{audit.ActionTokenRevoked, 0.01, 0.04},
	} {
		if s := share(c.action); s < c.min || s > c.max {
			t.Errorf("%s: %.3f of the records, want %.2f to %.2f", c.action, s, c.min, c.max)
		}
	}
	if chains[1] == 0 || chains[2] == 0 || chains[3] == 0 || len(chains) != 3 {
		t.Errorf("exchanges by chain length: %v, want 1 to 3", chains)
	}
	if len(f.batch.Tokens) != kinds[audit.ActionTokenExchange]+kinds[audit.ActionTokenIssue] {
		t.Errorf("%d token rows for %d grants", len(f.batch.Tokens), kinds[audit.ActionTokenExchange]+kinds[audit.ActionTokenIssue])
	}
}

// TestFillVerifyQuestions fills a SQLite store with 5,000 records, checks
// that `mandate audit verify` accepts the log, and runs the questions
// against it.
func TestFillVerifyQuestions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "mandate.db")
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := Main(ctx, args, &out, &errOut); code != 0 {
			t.Fatalf("mandate-bench %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	out := run("fill", "--store", "sqlite:"+db, "--records", "5000", "--batch", "300")
	if !strings.Contains(out, "wrote 5000 records") {
		t.Errorf("fill said:\n%s", out)
	}

	cfg := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(cfg, []byte("store: sqlite:"+db+"\ndata_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var vout, verr bytes.Buffer
	if code := cli.Main(ctx, []string{"audit", "verify", "--config", cfg}, &vout, &verr); code != 0 {
		t.Fatalf("mandate audit verify: exit %d\n%s%s", code, vout.String(), verr.String())
	}
	if !strings.Contains(vout.String(), "5000") {
		t.Errorf("mandate audit verify said:\n%s", vout.String())
	}

	var rep questionsReport
	if err := json.Unmarshal([]byte(run("questions", "--config", cfg, "--runs", "3", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Records != 5000 || len(rep.Questions) == 0 || len(rep.Passes) != 2 || rep.Size.Bytes == 0 {
		t.Fatalf("questions: %+v", rep)
	}
	for _, q := range rep.Questions {
		if q.Runs != 3 || q.P99 < q.P50 || q.P50 <= 0 {
			t.Errorf("%s: %d runs, p50 %s, p99 %s", q.Name, q.Runs, q.P50, q.P99)
		}
		if strings.HasPrefix(q.Name, "token lineage") && q.Found < 2 {
			t.Errorf("%s found %.1f records, want the token's and its parent's", q.Name, q.Found)
		}
	}
	for _, p := range rep.Passes {
		if p.Records != 5000 {
			t.Errorf("%s read %d records, want 5000", p.Name, p.Records)
		}
	}
	// A second fill would put records older than the first's after them.
	var errOut bytes.Buffer
	if code := Main(ctx, []string{"fill", "--store", "sqlite:" + db, "--records", "10"}, &bytes.Buffer{}, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "holds 5000 records already") {
		t.Errorf("a fill of a filled store: exit %d, %s", code, errOut.String())
	}
}

// TestFillConstants: the names the filler and the size of a PostgreSQL
// store repeat, rather than import, are the server's.
func TestFillConstants(t *testing.T) {
	if fillSignInClient != exchange.SignInClientID || defaultSchema != postgres.DefaultSchema {
		t.Errorf("fillSignInClient %q, defaultSchema %q: want %q and %q", fillSignInClient, defaultSchema, exchange.SignInClientID, postgres.DefaultSchema)
	}
}
