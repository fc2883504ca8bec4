package token

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGenReaderReadsAfterEachAsk: a caller that asks while a read is under
// way never gets that read's answer, which may predate what it must see,
// but the next one's; callers asking together share one read.
func TestGenReaderReadsAfterEachAsk(t *testing.T) {
	var reads atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	r := &genReader{read: func(context.Context) (int64, error) {
		n := reads.Add(1)
		started <- struct{}{}
		if n == 1 {
			<-release
		}
		return n, nil
	}}
	first := make(chan int64)
	go func() {
		g, _ := r.get(t.Context())
		first <- g
	}()
	<-started // read 1 is under way
	var wg sync.WaitGroup
	late := make([]int64, 5)
	for i := range late {
		wg.Go(func() { late[i], _ = r.get(t.Context()) })
	}
	// Let the late callers queue up behind read 1, then end it.
	time.Sleep(20 * time.Millisecond)
	close(release)
	if g := <-first; g != 1 {
		t.Errorf("first caller got read %d, want 1", g)
	}
	wg.Wait()
	for i, g := range late {
		if g != 2 {
			t.Errorf("caller %d, asking during read 1, got read %d, want 2", i, g)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads for 6 callers in two waves, want 2", n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.get(ctx); err == nil {
		t.Error("get with an ended context returned no error")
	}
}
