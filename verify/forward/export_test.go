package forward

import (
	"context"
	"time"
)

// NewBackoff is New with the wait between attempts
// bounded by lo and hi instead of 250 ms and 30 s, so that tests see the
// server come back quickly.
func NewBackoff(ctx context.Context, cfg Config, lo, hi time.Duration) (*Forwarder, error) {
	f, err := newForwarder(cfg)
	if err != nil {
		return nil, err
	}
	f.backoffMin, f.backoffMax = lo, hi
	f.start(ctx)
	return f, nil
}

// ReadBufferFile reads a file of Config.Dir: the records it can
// read, re-encoded, and the number of lines it cannot.
func ReadBufferFile(data []byte) (recs []string, corrupt int) {
	raw, corrupt := readBufferFile(data)
	for _, r := range raw {
		recs = append(recs, string(r))
	}
	return recs, corrupt
}

// BufferFileName is the name of the seq-th file in Config.Dir.
func BufferFileName(seq uint64) string { return bufferName(seq) }
