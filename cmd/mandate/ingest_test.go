package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/examples/deployapi"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

// requestRecords returns the ids of the "request" records the server
// holds, through GET /audit.
func (p *process) requestRecords(t *testing.T) ([]string, error) {
	t.Helper()
	code, body, err := p.admin(http.MethodGet, "/audit?action=request&limit=1000", "")
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("GET /audit: %d %v", code, err)
	}
	var ids []string
	evs, _ := body["events"].([]any)
	for _, e := range evs {
		ev, _ := e.(map[string]any)
		id, _ := ev["id"].(string)
		ids = append(ids, id)
	}
	return ids, nil
}

// TestForwarderSurvivesServerOutage: an API's records reach the server's
// log exactly once across a SIGKILL of the server. While the server is
// down the API keeps answering (it verifies tokens locally) and its
// forward.Forwarder keeps the records on disk; when a new server process is
// up they are delivered, none lost and none twice, and the log verifies.
func TestForwarderSurvivesServerOutage(t *testing.T) {
	onEveryBackend(t, func(t *testing.T, bin string, b backend) {
		dir, port := t.TempDir(), freePort(t)
		cfg := writeFeedConfig(t, dir, port, b)
		p := startServer(t, bin, cfg, port)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fwd, err := forward.New(ctx, forward.Config{
			URL: p.base + "/audit/ingest", ClientID: rsDeployAud, ClientSecret: rsSecrets[rsDeployAud],
			Dir: t.TempDir(), FlushEvery: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer fwd.Close(context.Background())
		v, err := verify.New(ctx, verify.Config{Issuer: p.base, Audience: rsDeployAud, Algorithms: []string{"EdDSA"}, Records: fwd})
		if err != nil {
			t.Fatal(err)
		}
		api := httptest.NewServer(deployapi.New(v))
		defer api.Close()
		deploy := func(tok string) int {
			req, _ := http.NewRequest(http.MethodPost, api.URL+"/deployments", strings.NewReader(`{"service":"checkout"}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		waitRecords := func(p *process, n int) []string {
			t.Helper()
			var ids []string
			if !eventually(20*time.Second, func() bool { ids, _ = p.requestRecords(t); return len(ids) >= n }) {
				t.Fatalf("the server holds %d request records, want %d; forwarder %+v", len(ids), n, fwd.Stats())
			}
			return ids
		}

		hop1 := p.mustExchange(t, "agent:infrabot", p.personToken(t), "agent:argocd", "deploy:create")
		tok := p.mustExchange(t, "agent:argocd", hop1, rsDeployAud, "deploy:create")
		for range 5 {
			if code := deploy(tok); code != http.StatusOK {
				t.Fatalf("deploy: %d", code)
			}
		}
		waitRecords(p, 5)

		p.kill(t)
		for range 10 {
			if code := deploy(tok); code != http.StatusOK {
				t.Fatalf("deploy with the server down: %d (the API verifies locally)", code)
			}
		}
		if !eventually(20*time.Second, func() bool { return fwd.Stats().Buffered >= 10 }) {
			t.Fatalf("the records made while the server was down are not on disk: %+v", fwd.Stats())
		}

		p = startServer(t, bin, cfg, port)
		ids := waitRecords(p, 15)
		time.Sleep(300 * time.Millisecond) // a duplicate would have landed by now
		if ids, _ = p.requestRecords(t); len(ids) != 15 {
			t.Fatalf("%d request records, want exactly 15", len(ids))
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("record %s stored twice", id)
			}
			seen[id] = true
		}
		if st := fwd.Stats(); st.Dropped+st.Rejected+st.Corrupt != 0 || st.Buffered != 0 {
			t.Errorf("forwarder lost or kept records: %+v", st)
		}
		// Every record names who acted for whom, and the log verifies.
		code, body, _ := p.admin(http.MethodGet, "/audit?action=request&limit=1", "")
		ev, _ := json.Marshal(body["events"])
		if code != 200 || !strings.Contains(string(ev), `"performed_by":"agent:argocd"`) || !strings.Contains(string(ev), `"on_behalf_of":"user:sam"`) ||
			!strings.Contains(string(ev), `"reported_by":"`+rsDeployAud+`"`) {
			t.Errorf("record %s", ev)
		}
		auditOK(t, bin, "--config", cfg)
	})
}
