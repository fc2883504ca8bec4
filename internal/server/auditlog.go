package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
	"github.com/mandate-dev/mandate/oauth"
)

// exportTimeout bounds one export response; a larger log is read in
// several, with after=.
const exportTimeout = 5 * time.Minute

// checkpointJSON is a checkpoint as the audit API shows it.
type checkpointJSON struct {
	Size      int64     `json:"size"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
}

// auditExport answers GET /audit/export: the log read forward from after=N
// (0 by default) as JSON lines, every record with its seq and chain hash,
// which `mandate audit verify --file` checks offline.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	after, err := intParam(r, "after")
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportTimeout))
	started := false
	enc := json.NewEncoder(w)
	for {
		evs, err := s.cfg.Store.EventsAfter(r.Context(), after, store.MaxPageLimit)
		if err != nil {
			if !started {
				return storeError(err, "audit log")
			}
			// The response has begun: cut it short, and the reader sees a
			// log that stops before the end it was promised (no trailer).
			return nil
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			started = true
		}
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return nil
			}
			after = ev.Seq
		}
		if len(evs) < store.MaxPageLimit {
			return nil
		}
	}
}

// auditCheckpoints answers GET /audit/checkpoints: every signed checkpoint
// and the key that verifies them (pin it: a key read from the server being
// audited proves only that the server signed).
func (s *Server) auditCheckpoints(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	vkey, err := s.cfg.Checkpoints.VerifierKey(r.Context())
	if err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	out := []checkpointJSON{}
	after := int64(0)
	for {
		cs, err := s.cfg.Store.Checkpoints(r.Context(), after, store.MaxPageLimit)
		if err != nil {
			return storeError(err, "checkpoints")
		}
		for _, c := range cs {
			out = append(out, checkpointJSON{Size: c.Size, Note: c.Note, CreatedAt: c.CreatedAt})
			after = c.Size
		}
		if len(cs) < store.MaxPageLimit {
			break
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"verifier_key": vkey, "checkpoints": out})
	return nil
}

// auditCheckpointNow answers POST /audit/checkpoints: sign a checkpoint of
// the log as it is now.
func (s *Server) auditCheckpointNow(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAdmin(r); err != nil {
		return err
	}
	c, err := s.cfg.Checkpoints.Checkpoint(r.Context())
	if err != nil {
		return oauth.Unavailable("checkpoint_failed", err)
	}
	writeJSON(w, http.StatusOK, checkpointJSON{Size: c.Size, Note: c.Note, CreatedAt: c.CreatedAt})
	return nil
}

// intParam reads a non-negative integer query parameter, 0 when absent.
func intParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, oauth.InvalidRequest(name+"_invalid", name+" must be a non-negative integer", nil)
	}
	return n, nil
}
