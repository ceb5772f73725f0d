package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/pausegate"
)

// maxReasonLength caps a pause reason.
const maxReasonLength = 500

// PauseRequest is the body of POST /v1/pause?account=A. Every field is
// optional: without ?account= every known account is paused; without For
// and Until the pause lasts until resumed.
type PauseRequest struct {
	For    string `json:"for"`   // a Go duration such as "30m"
	Until  string `json:"until"` // an RFC 3339 time
	Reason string `json:"reason"`
}

// PausedAccount is one account in a POST /v1/pause response.
type PausedAccount struct {
	Account string  `json:"account"`
	Until   *string `json:"until"` // RFC 3339; null when paused until resumed
	Reason  string  `json:"reason"`
	Kind    string  `json:"kind"`
}

// PauseResponse is the body of a POST /v1/pause response.
type PauseResponse struct {
	Paused []PausedAccount `json:"paused"`
}

// ResumeResponse is the body of a POST /v1/resume response.
type ResumeResponse struct {
	Resumed        []string `json:"resumed"`         // accounts that were paused
	QueuesUnpaused []string `json:"queues_unpaused"` // asynq queues paused by other means
}

// handlePause is POST /v1/pause, the API form of `promptq pause`.
func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	var req PauseRequest
	if !decodeBody(w, r, &req) {
		return
	}
	now := s.cfg.Clock.Now()
	var end time.Time
	switch {
	case req.For != "" && req.Until != "":
		fail(w, http.StatusBadRequest, CodeInvalidField, `give "for" or "until", not both`, "for")
		return
	case req.For != "":
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 {
			fail(w, http.StatusBadRequest, CodeInvalidField, fmt.Sprintf("must be a positive duration such as \"30m\", got %q", req.For), "for")
			return
		}
		end = now.Add(d)
	case req.Until != "":
		t, err := time.Parse(time.RFC3339, req.Until)
		if err != nil {
			fail(w, http.StatusBadRequest, CodeInvalidField, fmt.Sprintf("must be an RFC 3339 time such as \"2026-11-27T15:04:05Z\", got %q", req.Until), "until")
			return
		}
		if !t.After(now) {
			fail(w, http.StatusBadRequest, CodeInvalidField, "is in the past", "until")
			return
		}
		end = t
	}
	if len(req.Reason) > maxReasonLength {
		fail(w, http.StatusBadRequest, CodeInvalidField, fmt.Sprintf("must be at most %d bytes", maxReasonLength), "reason")
		return
	}
	if req.Reason == "" {
		req.Reason = "manual pause"
	}
	accts, ok := s.accounts(w, r)
	if !ok {
		return
	}
	if len(accts) == 0 {
		fail(w, http.StatusConflict, CodeNoAccount, "no account known yet: no worker has run", "account")
		return
	}
	resp := PauseResponse{Paused: []PausedAccount{}}
	for _, a := range accts {
		rec, err := s.gate.Pause(r.Context(), a, pausegate.PauseRequest{Until: end, Reason: req.Reason, Kind: pausegate.KindManual})
		if err != nil {
			s.log.Error().Err(err).Str("account", a).Msg("pause failed")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "pausing "+a+" failed; Redis may be unreachable", "")
			return
		}
		pa := PausedAccount{Account: a, Reason: rec.Reason, Kind: string(rec.Kind)}
		if !rec.Until.IsZero() {
			u := rec.Until.UTC().Format(time.RFC3339)
			pa.Until = &u
		}
		resp.Paused = append(resp.Paused, pa)
		s.log.Info().Str("account", a).Time("until", rec.Until).Msg("paused through the API")
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleResume is POST /v1/resume, the API form of `promptq resume`.
func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	var req struct{} // no fields: the account is ?account=
	if !decodeBody(w, r, &req) {
		return
	}
	ctx := r.Context()
	resp := ResumeResponse{Resumed: []string{}, QueuesUnpaused: []string{}}
	if name := r.URL.Query().Get("account"); name != "" {
		if !s.knownAccount(w, r, name) {
			return
		}
		was, err := s.gate.Resume(ctx, name)
		if err != nil {
			s.log.Error().Err(err).Str("account", name).Msg("resume failed")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "resuming "+name+" failed; Redis may be unreachable", "")
			return
		}
		if was {
			resp.Resumed = append(resp.Resumed, name)
		}
	} else {
		resumed, err := s.gate.ResumeAll(ctx)
		resp.Resumed = append(resp.Resumed, resumed...)
		if err != nil {
			s.log.Error().Err(err).Msg("resume failed")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "resuming failed; Redis may be unreachable", "")
			return
		}
		// Queues paused by hand in asynqmon or by an older run, as `promptq resume` does.
		names, _ := s.insp.Queues()
		for _, q := range names {
			if info, err := s.insp.GetQueueInfo(q); err == nil && info.Paused {
				if err := s.insp.UnpauseQueue(q); err == nil {
					resp.QueuesUnpaused = append(resp.QueuesUnpaused, q)
				}
			}
		}
	}
	s.log.Info().Strs("resumed", resp.Resumed).Strs("queues_unpaused", resp.QueuesUnpaused).Msg("resumed through the API")
	writeJSON(w, http.StatusOK, resp)
}

// handleStatus is GET /v1/status[?account=A]: the JSON of `promptq status --json`.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	accts, ok := s.accounts(w, r)
	if !ok {
		return
	}
	rep, err := status.Collect(r.Context(), s.cfg.Redis, s.insp, accts)
	if err != nil {
		s.log.Error().Err(err).Msg("status failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "reading the status failed; Redis may be unreachable", "")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// handleHealth is GET /healthz: 200 while Redis answers PING, else 503.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.ping(r.Context()); err != nil {
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "Redis does not answer", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady is GET /readyz: like /healthz, and 503 once shutdown began so
// load balancers stop sending traffic before the listener closes.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "shutting down", "")
		return
	}
	s.handleHealth(w, r)
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeoutDefault)
	defer cancel()
	return s.cfg.Redis.Ping(ctx).Err()
}
