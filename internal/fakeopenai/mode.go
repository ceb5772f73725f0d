package fakeopenai

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// SetMode switches the failure mode. With d > 0 the server reverts to
// ModeNormal once d has passed on the configured clock.
func (s *Server) SetMode(m Mode, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.modeUntil = m, time.Time{}
	if d > 0 && m != ModeNormal {
		s.modeUntil = s.cfg.Clock().Add(d)
	}
}

// Mode returns the mode in force now.
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modeLocked(s.cfg.Clock())
}

func (s *Server) modeLocked(now time.Time) Mode {
	if !s.modeUntil.IsZero() && !now.Before(s.modeUntil) {
		s.mode, s.modeUntil = ModeNormal, time.Time{}
	}
	return s.mode
}

// modeJSON is the body of /_fake/mode, in both directions.
type modeJSON struct {
	Mode Mode   `json:"mode"`
	For  string `json:"for,omitempty"`
}

// serveMode handles GET and POST /_fake/mode.
func (s *Server) serveMode(w http.ResponseWriter, r *http.Request) {
	handleMode(w, r, s.SetMode, func() any { return s.modeView() })
}

// handleMode handles GET and POST /_fake/mode: a POST body goes to set, and
// both answer with view.
func handleMode(w http.ResponseWriter, r *http.Request, set func(Mode, time.Duration), view func() any) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		m, d, err := decodeMode(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		set(m, d)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, view())
}

// decodeMode reads a POST /_fake/mode body.
func decodeMode(r *http.Request) (Mode, time.Duration, error) {
	var req modeJSON
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		return "", 0, fmt.Errorf("bad JSON: %w", err)
	}
	if !req.Mode.Valid() {
		return "", 0, fmt.Errorf("unknown mode %q", req.Mode)
	}
	var d time.Duration
	if req.For != "" {
		var err error
		if d, err = time.ParseDuration(req.For); err != nil || d < 0 {
			return "", 0, fmt.Errorf("bad duration %q for \"for\"", req.For)
		}
	}
	return req.Mode, d, nil
}

// modeView is the mode in force and, when it expires, how long it has left.
func (s *Server) modeView() modeJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := modeJSON{Mode: s.modeLocked(s.cfg.Clock())}
	if !s.modeUntil.IsZero() {
		out.For = s.modeUntil.Sub(s.cfg.Clock()).String()
	}
	return out
}
