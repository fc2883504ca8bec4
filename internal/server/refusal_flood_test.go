package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// TestRefusalFloodKeepsRegisteredClients is THREATS T86: 16,000 failed
// logins with made-up client ids in 8 s, with 6 wrong secrets for a
// registered client among them. The registered client's failures are all
// recorded under its own id (at most once a second, each record counting
// the failures since the one before); the made-up ids are summed into one
// record a second that counts them and the distinct ids among them, and
// names none of them.
func TestRefusalFloodKeepsRegisteredClients(t *testing.T) {
	h, advance := newClockedHarness(t, openSQLite)
	// In process (the server's own handler, without the loopback
	// connection), to keep 16,000 requests quick.
	bad := func(client string) {
		t.Helper()
		form := url.Values{"grant_type": {oauth.GrantClientCredentials}, "client_id": {client}, "client_secret": {"not-the-secret"}}
		req := httptest.NewRequest(http.MethodPost, h.url+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.app.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong secret for %s: %d %s", client, w.Code, w.Body)
		}
	}
	const (
		flood    = 16_000
		step     = 500 * time.Microsecond // 16,000 in 8 s
		victim   = "agent:cleanup_agent"
		attempts = 6
	)
	// Two of the victim's failures fall in one second (0.5 s and 0.55 s).
	victimAt := map[int]bool{1000: true, 1100: true, 5000: true, 9000: true, 12000: true, 15000: true}
	madeUp := 0
	for i := range flood {
		advance(step)
		if victimAt[i] {
			bad(victim)
			continue
		}
		bad(fmt.Sprintf("agent:made-up-%d", i))
		madeUp++
	}
	// One more made-up id a second later writes out what the last second
	// held back.
	advance(1100 * time.Millisecond)
	bad("agent:made-up-last")
	madeUp++

	var victimCount, unknownCount, unknownRecords int
	evs := h.events(store.EventFilter{Action: audit.ActionClientAuth})
	for _, ev := range evs {
		attrs := map[string]string{}
		if err := json.Unmarshal(ev.Attributes, &attrs); err != nil {
			t.Fatalf("attributes %s: %v", ev.Attributes, err)
		}
		n, err := strconv.Atoi(attrs["refusals"])
		if err != nil || n < 1 {
			t.Fatalf("record %+v: refusals %q", ev, attrs["refusals"])
		}
		switch ev.ClientID {
		case victim:
			if ev.Reason != "client_secret_mismatch" {
				t.Errorf("the victim's record has reason %q", ev.Reason)
			}
			victimCount += n
		default:
			if ev.Reason != "client_unknown" {
				t.Errorf("a made-up id's record has reason %q", ev.Reason)
			}
			if n > 1 && ev.ClientID != "" {
				t.Errorf("a sum of %d made-up ids names the client %q", n, ev.ClientID)
			}
			unknownRecords++
			unknownCount += n
			// All the made-up ids differ: a sum of n names n distinct ids.
			if n > 1 && attrs["distinct_client_ids"] != strconv.Itoa(n) {
				t.Errorf("a sum of %d made-up ids says distinct_client_ids %q", n, attrs["distinct_client_ids"])
			}
		}
	}
	if victimCount != attempts {
		t.Errorf("the records naming %s count %d failures, want %d", victim, victimCount, attempts)
	}
	if unknownCount != madeUp {
		t.Errorf("the records of made-up ids count %d failures, want %d", unknownCount, madeUp)
	}
	// One a second over 9 s, and a last one after.
	if unknownRecords > 10 {
		t.Errorf("%d records for the made-up ids, want at most one a second", unknownRecords)
	}
}
