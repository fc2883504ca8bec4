package forensics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// Matches says whether f selects ev, as the stores' QueryEvents do: every
// set field must match; Actor matches the performer, the client or any
// actor of the chain; JTI matches the jti or the parent jti; IDs matches
// any of the ids. BeforeSeq and Limit are paging, not matching, and are
// ignored.
func Matches(f store.EventFilter, ev store.Event) bool {
	exact := []struct{ want, got string }{
		{f.Subject, ev.OnBehalf}, {f.Action, ev.Action}, {f.Result, ev.Result}, {f.Audience, ev.Audience},
		{f.Resource, ev.Resource}, {f.DelegationID, ev.DelegationID}, {f.AgentVersion, ev.AgentVersion},
	}
	for _, m := range exact {
		if m.want != "" && m.want != m.got {
			return false
		}
	}
	switch {
	case f.Actor != "" && f.Actor != ev.Performer && f.Actor != ev.ClientID && !slices.Contains(ev.Chain, f.Actor):
		return false
	case f.JTI != "" && f.JTI != ev.JTI && f.JTI != ev.ParentJTI:
		return false
	case len(f.IDs) > 0 && !slices.Contains(f.IDs, ev.ID):
		return false
	case !f.Since.IsZero() && ev.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !ev.Time.Before(f.Until):
		return false
	}
	return true
}

// Memory is a Source over records held in memory, such as an export read
// back: it filters with Matches.
type Memory struct {
	events []store.Event // in seq order
}

// NewMemory returns a Source over events (any order).
func NewMemory(events []store.Event) *Memory {
	evs := slices.Clone(events)
	slices.SortFunc(evs, func(a, b store.Event) int { return compareSeq(a.Seq, b.Seq) })
	return &Memory{events: evs}
}

// QueryEvents implements Source.
func (m *Memory) QueryEvents(_ context.Context, f store.EventFilter) ([]store.Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []store.Event
	for i := len(m.events) - 1; i >= 0 && len(out) < limit; i-- {
		ev := m.events[i]
		if f.BeforeSeq > 0 && ev.Seq >= f.BeforeSeq {
			continue
		}
		if Matches(f, ev) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// TallyEvents implements Source: the events of f's window that Matches
// selects, counted by store.Tally.
func (m *Memory) TallyEvents(_ context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	w := store.EventFilter{Since: f.Since, Until: f.Until}
	var in []store.Event
	for _, ev := range m.events {
		if Matches(w, ev) {
			in = append(in, ev)
		}
	}
	return store.Tally(in, f), nil
}

// Server is a Source that asks a running Mandate server (GET /audit) with
// its admin token.
type Server struct {
	// URL is the server's base URL (its issuer).
	URL string
	// AdminToken is the bearer of /audit.
	AdminToken string
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
}

// QueryEvents implements Source. GET /audit has no filter by ids: a filter
// with IDs is refused.
func (s *Server) QueryEvents(ctx context.Context, f store.EventFilter) ([]store.Event, error) {
	if len(f.IDs) > 0 {
		return nil, errors.New("audit server: GET /audit cannot filter by record ids")
	}
	q := Query(f)
	var body struct {
		Events []store.Event `json:"events"`
	}
	if err := s.get(ctx, "/audit?"+q.Encode(), &body); err != nil {
		return nil, err
	}
	return body.Events, nil
}

// TallyEvents implements Source. GET /audit counts nothing: it reads
// every record of the window (TallyRecords).
func (s *Server) TallyEvents(ctx context.Context, f store.TallyFilter) ([]store.EventTally, error) {
	return TallyRecords(ctx, s, f)
}

// Query is f as GET /audit's query parameters.
func Query(f store.EventFilter) url.Values {
	q := url.Values{}
	for name, v := range map[string]string{
		"actor": f.Actor, "subject": f.Subject, "action": f.Action, "result": f.Result, "audience": f.Audience,
		"resource": f.Resource, "delegation": f.DelegationID, "agent_version": f.AgentVersion, "jti": f.JTI,
	} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.BeforeSeq > 0 {
		q.Set("cursor", strconv.FormatInt(f.BeforeSeq, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

func (s *Server) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.URL, "/")+path, nil)
	if err != nil {
		return fmt.Errorf("audit server: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.AdminToken)
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("audit server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return fmt.Errorf("audit server: GET /audit: %s %s %s", resp.Status, e.Error, e.Description)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(v); err != nil {
		return fmt.Errorf("audit server: GET /audit: %w", err)
	}
	return nil
}
