package feed_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/mandate-dev/mandate/verify"
	"github.com/mandate-dev/mandate/verify/feed"
)

// Subscribe to the issuer's revocation feed and let Verify consult it: a
// revoked token is refused within a heartbeat of its revocation, and while
// the feed is stale (or before its first snapshot) every token is refused
// with 503, never allowed. (Not run: it needs the issuer.)
func ExampleNew() {
	ctx := context.Background() // the server's lifetime: the feed stops with it
	rf, err := feed.New(ctx, feed.Config{
		URL:          "https://mandate.example/revocations/stream",
		ClientID:     "deploy-api",
		ClientSecret: "from-your-secret-store",
	})
	if err != nil {
		panic(err)
	}
	v, err := verify.New(ctx, verify.Config{
		Issuer:     "https://mandate.example",
		Audience:   "https://deploy.example",
		Algorithms: []string{"EdDSA"},
		Revocation: rf,
	})
	if err != nil {
		panic(err)
	}
	// Optional: wait for the first snapshot before taking traffic, and
	// expose the feed's health beside your other metrics.
	ready, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rf.Ready(ready); err != nil {
		fmt.Println("revocation feed not ready; requests get 503 until it is:", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics/revocation", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_ = rf.WriteMetrics(w)
	})
	mux.Handle("POST /deploys", v.Middleware(verify.RequireScope("deploy:create").Then(http.NotFoundHandler())))
	_ = http.ListenAndServe(":8080", mux)
}
