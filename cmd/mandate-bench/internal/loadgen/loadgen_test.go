package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fakeToken answers 200 unless the form's client_id is "bad", then 401.
func fakeToken(t *testing.T, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("client_id") == "bad" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"x"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunRequestBound(t *testing.T) {
	var hits atomic.Int64
	srv := fakeToken(t, &hits)
	body := func(w int) (string, error) {
		if w == 0 {
			return "client_id=bad", nil
		}
		return "client_id=good", nil
	}
	rep, err := Run(context.Background(), Config{
		URL: srv.URL, Body: body, Concurrency: 4, Requests: 200, PID: os.Getpid(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 200 || hits.Load() != 200 {
		t.Fatalf("requests %d, server saw %d, want 200", rep.Requests, hits.Load())
	}
	if rep.OK+rep.Errors != 200 || rep.Statuses[401] != rep.Errors || rep.Errors == 0 {
		t.Errorf("ok %d, errors %d, statuses %v", rep.OK, rep.Errors, rep.Statuses)
	}
	if rep.FirstError != `HTTP 401: {"error":"invalid_client"}` {
		t.Errorf("FirstError = %q", rep.FirstError)
	}
	if rep.Server == nil || rep.Server.RSSAfter <= 0 || rep.Load == nil {
		t.Errorf("usage missing: server %+v, load %+v", rep.Server, rep.Load)
	}
	l := rep.Latency
	if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency not ordered: %+v", l)
	}
	if rep.Throughput <= 0 {
		t.Errorf("throughput %v", rep.Throughput)
	}
}

func TestRunDurationBound(t *testing.T) {
	var hits atomic.Int64
	srv := fakeToken(t, &hits)
	start := time.Now()
	rep, err := Run(context.Background(), Config{
		URL:         srv.URL,
		Body:        func(int) (string, error) { return "client_id=good", nil },
		Concurrency: 2,
		Warmup:      50 * time.Millisecond,
		Duration:    150 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("run took %v", took)
	}
	if rep.Requests == 0 || rep.Errors != 0 || int64(rep.Requests) >= hits.Load() {
		t.Errorf("requests %d (errors %d), server saw %d including the warm-up", rep.Requests, rep.Errors, hits.Load())
	}
	if rep.Elapsed < 150*time.Millisecond {
		t.Errorf("elapsed %v", rep.Elapsed)
	}
}

// TestRunRate paces a load: at 100 requests a second for 300 ms, the
// window holds its 30 slots and no more, however many workers wait.
func TestRunRate(t *testing.T) {
	var hits atomic.Int64
	srv := fakeToken(t, &hits)
	rep, err := Run(context.Background(), Config{
		URL:         srv.URL,
		Body:        func(int) (string, error) { return "client_id=good", nil },
		Concurrency: 4,
		Rate:        100,
		Warmup:      50 * time.Millisecond,
		Duration:    300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests < 25 || rep.Requests > 30 || rep.Errors != 0 {
		t.Errorf("requests %d (errors %d), want 25 to 30 at 100/s over 300 ms", rep.Requests, rep.Errors)
	}
	if _, err := Run(context.Background(), Config{URL: srv.URL, Body: func(int) (string, error) { return "", nil }, Rate: -1}); err == nil {
		t.Error("a negative rate was accepted")
	}
}

// TestRunStopChannel runs a load with no bound but Stop, in the
// background, and ends it by closing Stop: the figures of the window are
// returned, not an error.
func TestRunStopChannel(t *testing.T) {
	var hits atomic.Int64
	srv := fakeToken(t, &hits)
	stop := make(chan struct{})
	done := make(chan Report, 1)
	go func() {
		rep, err := Run(context.Background(), Config{
			URL: srv.URL, Body: func(int) (string, error) { return "client_id=good", nil },
			Concurrency: 2, Warmup: 20 * time.Millisecond, Stop: stop,
		})
		if err != nil {
			t.Error(err)
		}
		done <- rep
	}()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	select {
	case rep := <-done:
		if rep.Requests == 0 || rep.Errors != 0 || rep.Throughput <= 0 {
			t.Errorf("requests %d, errors %d, throughput %v", rep.Requests, rep.Errors, rep.Throughput)
		}
		if rep.Elapsed > 5*time.Second {
			t.Errorf("elapsed %v: the default duration was applied", rep.Elapsed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end after Stop was closed")
	}
}

func TestRunStops(t *testing.T) {
	var hits atomic.Int64
	srv := fakeToken(t, &hits)
	t.Run("fail/body-error", func(t *testing.T) {
		boom := errors.New("boom")
		_, err := Run(context.Background(), Config{
			URL: srv.URL, Body: func(int) (string, error) { return "", boom }, Requests: 10,
		})
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want boom", err)
		}
	})
	t.Run("fail/cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := Run(ctx, Config{
			URL: srv.URL, Body: func(int) (string, error) { return "", nil }, Duration: time.Hour,
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
	})
	t.Run("fail/no-url", func(t *testing.T) {
		if _, err := Run(context.Background(), Config{Body: func(int) (string, error) { return "", nil }}); err == nil {
			t.Error("Run without URL succeeded")
		}
	})
}

func TestIdPToken(t *testing.T) {
	p, err := NewIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	raw, err := p.Token("user:sam", map[string]any{"scope": "a b"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.JWKSURI())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := tok.Headers[0].KeyID; len(set.Key(kid)) != 1 {
		t.Fatalf("kid %q not in the JWKS", kid)
	}
	var c struct {
		jwt.Claims
		Scope string `json:"scope"`
	}
	if err := tok.Claims(set.Keys[0].Key, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(jwt.Expected{Issuer: p.URL(), Subject: "user:sam", AnyAudience: jwt.Audience{"mandate"}}); err != nil {
		t.Error(err)
	}
	if c.Scope != "a b" {
		t.Errorf("scope = %q", c.Scope)
	}
}

func TestExchangeBodies(t *testing.T) {
	p, err := NewIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	now := time.Unix(1_800_000_000, 0)
	p.Now = func() time.Time { return now }
	bodies, err := Exchange{
		Agents:  []Agent{{ID: "agent:a", Secret: "sa"}, {ID: "agent:b", Secret: "sb"}},
		IdP:     p,
		Subject: "user:sam", Audience: "https://deploy.example", Scope: "monitoring:read",
	}.Bodies(3)
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := bodies(0)
	b1, _ := bodies(1)
	b2, _ := bodies(2)
	f0, _ := url.ParseQuery(b0)
	f1, _ := url.ParseQuery(b1)
	f2, _ := url.ParseQuery(b2)
	if f0.Get("client_id") != "agent:a" || f1.Get("client_id") != "agent:b" || f2.Get("client_id") != "agent:a" {
		t.Errorf("agents by worker: %s %s %s", f0.Get("client_id"), f1.Get("client_id"), f2.Get("client_id"))
	}
	if f0.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" ||
		f0.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:id_token" ||
		f0.Get("audience") != "https://deploy.example" || f0.Get("scope") != "monitoring:read" ||
		f0.Get("client_secret") != "sa" {
		t.Errorf("form: %v", f0)
	}
	if again, _ := bodies(0); again != b0 {
		t.Error("body changed before the subject token aged")
	}
	now = now.Add(p.TTL/2 + time.Second)
	if later, _ := bodies(0); later == b0 {
		t.Error("subject token not re-minted after half its lifetime")
	}
}
