package forward_test

import (
	"context"
	"net/http"
	"time"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/forward"
)

// Send every request's record to the issuer's audit log, with a fact the
// handler adds, and keep the records on disk while the issuer is away.
// (Not run: it needs the issuer.)
func ExampleNew() {
	ctx := context.Background()
	fw, err := forward.New(ctx, forward.Config{
		URL:          "https://mandate.example/audit/ingest",
		ClientID:     "expense-api",
		ClientSecret: "from-your-secret-store",
		Dir:          "/var/lib/expense-api/records",
	})
	if err != nil {
		panic(err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer:     "https://mandate.example",
		Audience:   "https://expense.example",
		Algorithms: []string{"EdDSA"},
		Records:    fw,
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /expenses/{id}/approve", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify.SetAction(r.Context(), "expense:approve", "expense/"+r.PathValue("id"))
		verify.Attribute(r.Context(), "amount", "487.50")
		w.WriteHeader(http.StatusNoContent)
	})))
	mux.HandleFunc("GET /metrics/records", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = fw.WriteMetrics(w)
	})
	srv := &http.Server{Addr: ":8080", Handler: mux}
	_ = srv.ListenAndServe()
	// On shutdown: stop taking requests, then flush the records.
	shutdown, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	_ = fw.Close(shutdown)
}
