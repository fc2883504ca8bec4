package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// auditEverySecond is the configuration that makes a server sign a
// checkpoint every second the log grew (the fastest it allows), so that
// the servers of these tests sign checkpoints while they are under load,
// and are killed while they do.
const auditEverySecond = "audit:\n  checkpoint_every: 1s\n"

// auditOKLine is what `mandate audit verify` prints for a log that verifies.
var auditOKLine = regexp.MustCompile(`audit log OK: (\d+) records, (\d+) signed checkpoints matched`)

// auditOK runs `mandate audit verify ARGS` and fails the test unless it
// exits 0 and says OK; it returns how many records chained and how many
// signed checkpoints the log matched.
func auditOK(t *testing.T, bin string, args ...string) (records int64, checkpoints int) {
	t.Helper()
	out, code := auditRun(t, bin, append([]string{"verify"}, args...)...)
	m := auditOKLine.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("mandate audit verify %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	records, _ = strconv.ParseInt(m[1], 10, 64)
	checkpoints, _ = strconv.Atoi(m[2])
	return records, checkpoints
}

// exportedLog is the log of cfg's store as `mandate audit export` writes
// it, oldest first.
func exportedLog(t *testing.T, bin, cfg string) []store.Event {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.jsonl")
	if out, code := auditRun(t, bin, "export", "--config", cfg, "--out", path); code != 0 {
		t.Fatalf("mandate audit export: exit %d: %s", code, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []store.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitLogSettled returns once the exported log of cfg's store has kept
// its length for half a second (at most 15 s): after a SIGKILL, the
// database may still be finishing the dead server's last commit.
func waitLogSettled(t *testing.T, bin, cfg string) {
	t.Helper()
	last := -1
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		n := len(exportedLog(t, bin, cfg))
		if n == last {
			return
		}
		last = n
	}
	t.Fatal("the audit log kept growing for 15 s after the server was killed")
}

// checkSeqs fails the test unless evs are numbered 1 to n in order, n the
// number of records verify chained: no gap, no duplicate, nothing past the
// end of the verified chain.
func checkSeqs(t *testing.T, evs []store.Event, verified int64) {
	t.Helper()
	if int64(len(evs)) != verified {
		t.Errorf("the export holds %d records, verify chained %d", len(evs), verified)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("record %d of the export has seq %d", i+1, ev.Seq)
		}
	}
}

// verifierKey is the checkpoint verifier key p publishes, read once while
// the server is trusted, and pinned by the verifications after.
func (p *process) verifierKey(t *testing.T) string {
	t.Helper()
	body := p.mustAdmin(t, http.MethodGet, "/audit/checkpoints", "")
	key, _ := body["verifier_key"].(string)
	if key == "" {
		t.Fatalf("GET /audit/checkpoints: no verifier key: %v", body)
	}
	return key
}

// auditCheckpoint asks p to sign a checkpoint now and returns its size.
func (p *process) auditCheckpoint(t *testing.T) int64 {
	t.Helper()
	code, body, err := p.admin(http.MethodPost, "/audit/checkpoints", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("POST /audit/checkpoints: %d %v %v", code, body, err)
	}
	return int64(body["size"].(float64))
}

// exchangeWithID is p.exchange that also returns the X-Request-Id of the
// answer: the request_id of the exchange's audit record.
func (p *process) exchangeWithID(subject string) (tok, requestID string, ok bool) {
	resp, err := p.client.PostForm(p.base+"/token", url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {"https://deploy.example"},
		"scope":              {"monitoring:read"},
		"client_id":          {"agent:infrabot"},
		"client_secret":      {"infrabot-secret"},
	})
	code, body, err := decode(resp, err)
	if err != nil || code != http.StatusOK {
		return "", "", false
	}
	tok, _ = body["access_token"].(string)
	return tok, resp.Header.Get("X-Request-Id"), tok != ""
}

// answered is an exchange answered 200: its request id and token.
type answered struct{ requestID, token string }

func (a answered) String() string { return a.requestID + " " + a.token }

func parseAnswered(s string) answered {
	id, tok, _ := strings.Cut(s, " ")
	return answered{requestID: id, token: tok}
}

// TestAuditSurvivesSIGKILL is THREATS T70 with the real binary on every
// backend, three trials each: a server signing a checkpoint every second
// is SIGKILLed at a random moment of a burst of token exchanges (8
// workers). Then, with no server running:
//
//   - `mandate audit verify --config` exits 0 and says OK, against the
//     store's checkpoints and the witness file, with the key pinned before
//     the burst: the kill left no torn record in the chain (a torn write
//     would be a record that does not match its chain hash, or a checkpoint
//     beyond the end of the log);
//   - the export is numbered 1 to N with N the records verify chained;
//   - every exchange answered 200 has its token.exchange record, granted,
//     with the answer's X-Request-Id and the token's jti, in that verified
//     chain.
//
// Restarted on the same store, the server appends again (an exchange), a
// new checkpoint is accepted (POST /audit/checkpoints) and verify, run
// beside the live server, still says OK with more records and checkpoints.
func TestAuditSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	bin := buildBinary(t)
	for _, b := range backends(t) {
		for trial := range 3 {
			t.Run(fmt.Sprintf("%s/trial-%d", b.name, trial), func(t *testing.T) {
				// A schema of its own per trial: each starts from an empty log.
				b := backend{name: b.name, yaml: strings.Replace(b.yaml, "store_schema: t_", fmt.Sprintf("store_schema: t%d_", trial), 1) + auditEverySecond}
				dir, port := t.TempDir(), freePort(t)
				cfg := writeConfig(t, dir, port, b)
				p := startServer(t, bin, cfg, port)
				key := p.verifierKey(t)
				subject := p.personToken(t)
				signed := p.auditCheckpoint(t)

				items := make([]string, 20000)
				ctx, cancel := context.WithCancel(context.Background())
				firstAck, underWay := make(chan struct{}), make(chan struct{})
				go func() {
					// Up to 1.5 s into the burst, so that some kills land
					// after (or while) the server signs a checkpoint of a
					// log under load.
					<-firstAck
					time.Sleep(time.Duration(rand.IntN(1300)) * time.Millisecond)
					close(underWay)
				}()
				go killAfterRandomDelay(t, p, underWay, cancel)
				start := time.Now()
				acked := burst(ctx, items, firstAck, func(string) (string, bool) {
					tok, id, ok := p.exchangeWithID(subject)
					return answered{requestID: id, token: tok}.String(), ok
				})
				if len(acked) == 0 {
					t.Fatal("no exchange completed before the kill; the test proves nothing")
				}
				rate := float64(len(acked)) / time.Since(start).Seconds()
				// PostgreSQL may still commit a transaction whose COMMIT the
				// killed server sent: read the log once it has stopped growing.
				waitLogSettled(t, bin, cfg)

				records, checkpoints := auditOK(t, bin, "--config", cfg, "--key", key)
				t.Logf("%d exchanges answered 200 before SIGKILL (%.0f/s); the log verifies: %d records, %d checkpoints matched",
					len(acked), rate, records, checkpoints)
				if records < signed+int64(len(acked)) {
					t.Errorf("%d records verified; want at least %d (the checkpoint before the burst) + %d exchanges", records, signed, len(acked))
				}
				if checkpoints < 2 {
					// The one signed before the burst: in the store and the witness file.
					t.Errorf("%d checkpoints matched, want at least 2", checkpoints)
				}
				evs := exportedLog(t, bin, cfg)
				checkSeqs(t, evs, records)
				byRequest := map[string]store.Event{}
				for _, ev := range evs {
					if ev.Action == "token.exchange" {
						byRequest[ev.RequestID] = ev
					}
				}
				missing := 0
				for _, s := range acked {
					a := parseAnswered(s)
					ev, ok := byRequest[a.requestID]
					if jti := jtiOf(t, a.token); !ok || ev.JTI != jti || ev.Result != "granted" {
						if missing++; missing <= 5 {
							t.Errorf("exchange %s answered 200 (jti %s) has no granted token.exchange record in the verified log (found %+v)", a.requestID, jti, ev)
						}
					}
				}
				if missing > 5 {
					t.Errorf("… %d exchanges answered 200 without their record in all", missing)
				}

				p = startServer(t, bin, cfg, port)
				tok, id, ok := p.exchangeWithID(subject)
				if !ok {
					t.Fatal("no exchange after the restart")
				}
				// The API reads the same store: the last answers before the
				// kill, and the first after, are there too.
				for _, a := range append([]answered{{requestID: id, token: tok}}, lastAnswered(acked, 5)...) {
					if !p.auditActions(t, jtiOf(t, a.token))["token.exchange"] {
						t.Errorf("GET /audit has no token.exchange record of %s", a.requestID)
					}
				}
				size := p.auditCheckpoint(t)
				if size <= records {
					t.Errorf("checkpoint after the restart at size %d; the log had %d records before it and one more exchange since", size, records)
				}
				after, more := auditOK(t, bin, "--config", cfg, "--key", key)
				if after < size || more < checkpoints+2 {
					t.Errorf("after the restart: %d records and %d checkpoints matched; want at least %d and %d", after, more, size, checkpoints+2)
				}
			})
		}
	}
}

// lastAnswered is the last n of the acknowledged answers, the ones
// closest to the kill.
func lastAnswered(acked []string, n int) []answered {
	var out []answered
	for _, s := range acked[max(0, len(acked)-n):] {
		out = append(out, parseAnswered(s))
	}
	return out
}
