package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/mandate-dev/mandate/internal/auditlog"
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
	if err := s.requireAuditor(r); err != nil {
		return err
	}
	after, err := intParam(r, "after")
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportTimeout))
	started := false
	var line []byte
	err = store.EachEvent(r.Context(), s.cfg.Store, after, func(ev store.Event) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			started = true
		}
		var err error
		if line, err = auditlog.AppendExportLine(line[:0], ev); err != nil {
			return err
		}
		_, err = w.Write(line)
		return err
	})
	if err != nil && !started {
		return storeError(err, "audit log")
	}
	// Once the response has begun an error cuts it short: the reader sees
	// a log that stops before its end, which verify reports.
	return nil
}

// auditCheckpoints answers GET /audit/checkpoints: every signed checkpoint
// and the key that verifies them (pin it: a key read from the server being
// audited proves only that the server signed).
func (s *Server) auditCheckpoints(w http.ResponseWriter, r *http.Request) error {
	if err := s.requireAuditor(r); err != nil {
		return err
	}
	vkey, err := s.cfg.Checkpoints.VerifierKey(r.Context())
	if err != nil {
		return oauth.Unavailable("store_unavailable", err)
	}
	cs, err := store.AllCheckpoints(r.Context(), s.cfg.Store)
	if err != nil {
		return storeError(err, "checkpoints")
	}
	out := make([]checkpointJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, checkpointJSON{Size: c.Size, Note: c.Note, CreatedAt: c.CreatedAt})
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
