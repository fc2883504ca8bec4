package auditlog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mandate-dev/mandate/internal/auditlog"
	"github.com/mandate-dev/mandate/internal/store"
)

// BenchmarkCheckpointerRead: reading and checking the log ahead of a
// checkpoint, per record, for records like the ones a token exchange
// writes.
func BenchmarkCheckpointerRead(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	const n = 4096
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = store.Event{
			ID: fmt.Sprintf("evt_%032x", i), RequestID: fmt.Sprintf("req_%032x", i),
			Action: "token.exchange", Result: "granted", Performer: "agent:infrabot", OnBehalf: "user:sam",
			Chain: []string{"agent:infrabot"}, ClientID: "agent:infrabot", Scopes: []string{"monitoring:read"},
			Requested: []string{"monitoring:read", "deploy:comment"}, Audience: "https://deploy.example",
			Context:      []byte(`{"environment":"prod","trigger":"ci_pipeline"}`),
			DelegationID: "dlg_0123456789abcdef", JTI: fmt.Sprintf("%032x", i),
		}
	}
	if err := s.Commit(ctx, store.Batch{Events: evs}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c := &auditlog.Checkpointer{Store: s, Origin: "o"}
		if got, err := c.Read(ctx); err != nil || got != n {
			b.Fatalf("Read = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
