package feed_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-dev/mandate/revocation"
	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
	"github.com/mandate-dev/mandate/verify/internal/feedtest"
)

// epoch is the fixed test time.
var epoch = time.Unix(1_750_000_000, 0)

func TestNewFeedRefusesConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  feed.Config
		ok   bool
	}{
		{name: "ok/https", cfg: feed.Config{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "ok/http-loopback", cfg: feed.Config{URL: "http://127.0.0.1:8080/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "ok/http-localhost", cfg: feed.Config{URL: "http://localhost/revocations/stream", ClientID: "rs", ClientSecret: "s"}, ok: true},
		{name: "fail/no-url", cfg: feed.Config{ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/http-remote", cfg: feed.Config{URL: "http://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/userinfo", cfg: feed.Config{URL: "https://rs:s@mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/relative", cfg: feed.Config{URL: "/revocations/stream", ClientID: "rs", ClientSecret: "s"}},
		{name: "fail/no-client-id", cfg: feed.Config{URL: "https://mandate.example/revocations/stream", ClientSecret: "s"}},
		{name: "fail/no-secret", cfg: feed.Config{URL: "https://mandate.example/revocations/stream", ClientID: "rs"}},
		{name: "fail/negative-staleness", cfg: feed.Config{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s", MaxStaleness: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			rf, err := feed.New(ctx, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("NewFeed error = %v, want ok = %v", err, tc.ok)
			}
			if err == nil {
				cancel()
				<-feed.FeedDone(rf)
			}
		})
	}
}

// TestFeedResumes: after a dropped connection the rf sends its position
// and receives only what it missed.
func TestFeedResumes(t *testing.T) {
	srv := feedtest.New(t)
	u := feedtest.Until()
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: u})
	rf := feedtest.Start(t, t.Context(), srv)
	srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "b", Until: u})
	feedtest.Eventually(t, "entry 2", func() bool { return rf.Seq() == 2 })

	srv.Do(func(s *feedtest.Server) {
		s.DropGen++
		s.Log = append(s.Log, revocation.Entry{Seq: 3, Kind: revocation.KindToken, ID: "c", Until: u})
	})
	feedtest.Eventually(t, "entry 3", func() bool { return rf.Seq() == 3 })
	got := srv.Seen()
	if len(got) != 2 {
		t.Fatalf("%d connections, want 2", len(got))
	}
	want := feedtest.Request{Query: "heartbeat=1.667s", LastEventID: "s1/2", Sent: []int64{3}}
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("second connection (-want +got):\n%s", diff)
	}
	var metrics bytes.Buffer
	if err := rf.WriteMetrics(&metrics); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"# TYPE mandate_revocation_staleness_seconds gauge\nmandate_revocation_staleness_seconds ",
		"# HELP mandate_revocation_sequence ",
		"# TYPE mandate_revocation_sequence gauge\nmandate_revocation_sequence 3\n",
		"# TYPE mandate_revocation_entries gauge\nmandate_revocation_entries 3\n",
		"# TYPE mandate_revocation_reconnects_total counter\nmandate_revocation_reconnects_total 1\n",
	} {
		if !strings.Contains(metrics.String(), line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics.String())
		}
	}
}

// TestFeedRefusesMalformed: data the rf cannot apply drops the
// connection; the next one asks for a snapshot; nothing invalid is held.
func TestFeedRefusesMalformed(t *testing.T) {
	u := feedtest.Until()
	entry := func(e revocation.Entry) string {
		return feedtest.Event(revocation.EventRevocation, "s1/"+strconv.FormatInt(e.Seq, 10), e)
	}
	for _, tc := range []struct {
		name   string
		inject string
	}{
		{name: "fail/entry-not-json", inject: "event: revocation\nid: s1/2\ndata: {\"seq\":2,\n\n"},
		{name: "fail/entry-duplicate-member", inject: "event: revocation\nid: s1/2\ndata: {\"seq\":2,\"kind\":\"token\",\"id\":\"x\",\"id\":\"y\",\"until\":9999999999}\n\n"},
		{name: "fail/entry-unknown-kind", inject: entry(revocation.Entry{Seq: 2, Kind: "everything", ID: "x", Until: u})},
		{name: "fail/entry-subject-without-gen", inject: entry(revocation.Entry{Seq: 2, Kind: revocation.KindSubject, ID: "user:sam", Until: u})},
		{name: "fail/entry-id-mismatch", inject: feedtest.Event(revocation.EventRevocation, "s1/3", revocation.Entry{Seq: 2, Kind: revocation.KindToken, ID: "x", Until: u})},
		{name: "fail/entry-without-id", inject: feedtest.Event(revocation.EventRevocation, "", revocation.Entry{Seq: 2, Kind: revocation.KindToken, ID: "x", Until: u})},
		{name: "fail/entry-too-large", inject: "event: revocation\nid: s1/2\ndata: " + strings.Repeat(" ", 65<<10) + "{}\n\n"},
		{name: "fail/heartbeat-not-json", inject: "event: heartbeat\ndata: nope\n\n"},
		{name: "fail/snapshot-invalid-entry", inject: feedtest.Event(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s1", Seq: 2, Entries: []revocation.Entry{{Seq: 2, Kind: "token", ID: "", Until: u}}})},
		{name: "fail/snapshot-bad-stream", inject: feedtest.Event(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s 1\r\nX-Evil: 1", Seq: 2})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := feedtest.New(t)
			srv.Add(revocation.Entry{Kind: revocation.KindToken, ID: "a", Until: u})
			rf := feedtest.Start(t, t.Context(), srv)
			srv.Do(func(s *feedtest.Server) { s.Inject = tc.inject })
			feedtest.Eventually(t, "a second connection", func() bool { return len(srv.Seen()) >= 2 })
			feedtest.Eventually(t, "a current state", func() bool { return feed.FeedCurrent(rf) })
			got := srv.Seen()
			if !got[0].Injected || got[1].LastEventID != "" || !got[1].Snapshot {
				t.Errorf("connections = %+v, want the second without Last-Event-ID, served a snapshot", got)
			}
			for _, e := range feed.FeedEntries(rf) {
				if err := e.Validate(); err != nil || e.ID != "a" {
					t.Errorf("holds %+v (%v), want only entry a", e, err)
				}
			}
		})
	}
}

// TestFeedStopsWithContext: the goroutine returns and closes the stream
// when its context ends, connected or backing off.
func TestFeedStopsWithContext(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
	}{
		{name: "ok/connected"},
		{name: "ok/backing-off", status: http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := feedtest.New(t)
			srv.Status = tc.status
			ctx, cancel := context.WithCancel(t.Context())
			rf, err := feed.New(ctx, feedtest.Config(srv))
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 0 {
				if err := rf.Ready(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				feedtest.Eventually(t, "a refusal", func() bool { return len(srv.Seen()) >= 1 })
			}
			cancel()
			select {
			case <-feed.FeedDone(rf):
			case <-time.After(5 * time.Second):
				t.Fatal("the rf's goroutine did not return")
			}
			feedtest.Eventually(t, "the stream closed", func() bool { return srv.OpenConnections() == 0 })
			if err := rf.Ready(t.Context()); tc.status != 0 && err == nil {
				t.Error("Ready succeeded on a stopped rf without a snapshot")
			}
		})
	}
}

func TestParseSSE(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		max  int
		want []feed.SSEEvent
		err  bool
	}{
		{name: "ok/lf", body: "event: snapshot\nid: s/1\ndata: {}\n\n", want: []feed.SSEEvent{{Type: "snapshot", ID: "s/1", Data: "{}"}}},
		{name: "ok/crlf", body: "event: heartbeat\r\ndata: a\r\n\r\n", want: []feed.SSEEvent{{Type: "heartbeat", Data: "a"}}},
		{name: "ok/cr", body: "event: heartbeat\rdata: a\r\r", want: []feed.SSEEvent{{Type: "heartbeat", Data: "a"}}},
		{name: "ok/multi-line-data", body: "data: a\ndata:b\ndata\n\n", want: []feed.SSEEvent{{Data: "a\nb\n"}}},
		{name: "ok/comments-and-unknown-fields", body: ": hi\nretry: 10\nfoo: bar\ndata: x\n\n:\n\n", want: []feed.SSEEvent{{Data: "x"}}},
		{name: "ok/bom", body: "\uFEFFdata: x\n\n", want: []feed.SSEEvent{{Data: "x"}}},
		{name: "ok/only-one-space-stripped", body: "data:  x \n\n", want: []feed.SSEEvent{{Data: " x "}}},
		{name: "ok/id-not-carried-over", body: "id: s/1\ndata: a\n\ndata: b\n\n", want: []feed.SSEEvent{{ID: "s/1", Data: "a"}, {Data: "b"}}},
		{name: "ok/id-with-nul-ignored", body: "id: s\x00/1\ndata: a\n\n", want: []feed.SSEEvent{{Data: "a"}}},
		{name: "ok/no-data-no-event", body: "event: heartbeat\n\n", want: nil},
		{name: "ok/unfinished-event-dropped", body: "data: a\n\ndata: b\n", want: []feed.SSEEvent{{Data: "a"}}},
		{name: "fail/line-too-long", body: "data: " + strings.Repeat("x", 100) + "\n\n", max: 64, err: true},
		{name: "fail/data-too-large", body: strings.Repeat("data: xxxxxxxx\n", 10) + "\n", max: 64, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 10
			}
			// Byte by byte too: a CRLF split across reads is one line end.
			for name, body := range map[string]io.Reader{
				"whole":    strings.NewReader(tc.body),
				"bytewise": iotest.OneByteReader(strings.NewReader(tc.body)),
			} {
				got, err := feed.ParseSSE(body, max)
				if (err != nil) != tc.err {
					t.Fatalf("%s: error = %v, want error %v", name, err, tc.err)
				}
				if diff := cmp.Diff(tc.want, got); !tc.err && diff != "" {
					t.Errorf("%s: events (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

// FuzzFeedEvents feeds arbitrary bytes to the stream parser and the event
// handling of one connection: it must never panic, never hold an entry that
// does not validate, and never answer from a state it could not load.
func FuzzFeedEvents(f *testing.F) {
	now := func() time.Time { return epoch }
	snap := feedtest.Event(revocation.EventSnapshot, "", revocation.Snapshot{Stream: "s1", Seq: 2, Entries: []revocation.Entry{
		{Seq: 1, Kind: revocation.KindToken, ID: "a", Until: epoch.Unix() + 3600},
		{Seq: 2, Kind: revocation.KindScope, ID: "user:sam", Scope: "deploy:create", Gen: 3, Until: epoch.Unix() + 3600},
	}})
	for _, seed := range []string{
		snap,
		snap + feedtest.Event(revocation.EventRevocation, "s1/3", revocation.Entry{Seq: 3, Kind: revocation.KindAgent, ID: "agent:x", Gen: 2, Until: epoch.Unix() + 60}),
		snap + feedtest.Event(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: "s1", Seq: 9}),
		snap + feedtest.Event(revocation.EventHeartbeat, "", revocation.Heartbeat{Stream: "s2", Seq: 1}),
		snap + feedtest.Event(revocation.EventRevocation, "s2/3", revocation.Entry{Seq: 3, Kind: revocation.KindKey, ID: "k", Until: 1}),
		snap + "event: revocation\r\nid: s1/3\r\ndata: {\"seq\":3,\"kind\":\"subject\",\"id\":\"u\",\"until\":5}\r\n\r\n",
		"\uFEFF: comment\revent: snapshot\rdata: {\"stream\":\"s\",\"seq\":0,\"entries\":null}\r\r",
		"event: snapshot\ndata: {\"stream\":\"s\",\n\ndata: \"seq\":1}\n\n",
		"event: heartbeat\ndata: {}\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rf, _ := feed.ConsumeFeed(body, now)
		for _, e := range feed.FeedEntries(rf) {
			if err := e.Validate(); err != nil {
				t.Fatalf("holds an invalid entry %+v: %v", e, err)
			}
		}
		_, err := rf.Revoked(t.Context(), &verify.Principal{JTI: "a", Subject: "user:sam", IssuedAt: epoch})
		if !feed.FeedCurrent(rf) && !errors.Is(err, feed.ErrStale) {
			t.Fatalf("answered from a state it could not load: %v", err)
		}
	})
}
