package feed

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/revocation"
)

// NewLoadedFeed returns a Feed holding snap as if its issuer had just sent
// it, with no goroutine and no network (benchmarks).
func NewLoadedFeed(snap revocation.Snapshot, now func() time.Time) (*Feed, error) {
	f, err := newFeed(Config{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s", Now: now})
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return nil, err
	}
	if _, err := f.apply(sseEvent{typ: revocation.EventSnapshot, data: data}); err != nil {
		return nil, err
	}
	return f, nil
}

// FeedDone returns a channel closed when f's goroutine has returned.
func FeedDone(f *Feed) <-chan struct{} { return f.done }

// ConsumeFeed applies body, a text/event-stream, to a fresh Feed as one
// connection would, and returns the Feed and why the connection ended.
func ConsumeFeed(body []byte, now func() time.Time) (*Feed, error) {
	f, err := newFeed(Config{URL: "https://mandate.example/revocations/stream", ClientID: "rs", ClientSecret: "s", Now: now})
	if err != nil {
		return nil, err
	}
	_, err = f.consume(strings.NewReader(string(body)), func() {})
	return f, err
}

// FeedEntries returns the entries f holds.
func FeedEntries(f *Feed) []revocation.Entry { return f.set.Entries() }

// FeedCurrent reports whether f's state may be answered from.
func FeedCurrent(f *Feed) bool { return f.loaded.Load() && f.current.Load() }

// IsResync reports whether err asks for a snapshot on the next connection.
func IsResync(err error) bool { return errors.Is(err, errResync) }

// SSEEvent is one parsed Server-Sent Event.
type SSEEvent struct{ Type, ID, Data string }

// ParseSSE parses body into events with a bound of max bytes.
func ParseSSE(body io.Reader, max int) ([]SSEEvent, error) {
	r := newSSEReader(body, max)
	var out []SSEEvent
	for {
		ev, err := r.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out, err
		}
		out = append(out, SSEEvent{ev.typ, ev.id, string(ev.data)})
	}
}
