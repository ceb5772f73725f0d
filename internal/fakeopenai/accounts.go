package fakeopenai

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Accounts is a fake provider with several accounts, each an independent
// Server (its own limits, mode, stats) served under /<name>/. It is an
// http.Handler; create it with NewAccounts. Safe for concurrent use.
type Accounts struct {
	names   []string // in the order given
	servers map[string]*Server
}

// NewAccounts returns one Server per spec, each with base and the spec's
// overrides, in a multi-account front. Names must be unique; at least one
// spec is needed.
func NewAccounts(base Config, specs []AccountSpec) (*Accounts, error) {
	if err := base.Validate(); err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("fakeopenai: NewAccounts needs at least one account")
	}
	a := &Accounts{servers: make(map[string]*Server, len(specs))}
	for _, spec := range specs {
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		if a.servers[spec.Name] != nil {
			return nil, fmt.Errorf("fakeopenai: account %s given twice", spec.Name)
		}
		cfg := spec.config(base)
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("fakeopenai: account %s: %w", spec.Name, err)
		}
		s := New(cfg)
		if spec.Mode != "" {
			s.SetMode(spec.Mode, 0)
		}
		a.names = append(a.names, spec.Name)
		a.servers[spec.Name] = s
	}
	return a, nil
}

// Account returns the named account's Server, or nil if there is none.
func (a *Accounts) Account(name string) *Server { return a.servers[name] }

// Names returns the account names in the order they were given.
func (a *Accounts) Names() []string { return append([]string(nil), a.names...) }

// ServeHTTP serves /<name>/... from that account's Server (with the prefix
// stripped, so /<name>/v1 is a base URL for an OpenAI client), the /_fake
// admin endpoints with ?account=<name> (without it: mode and reset act on
// every account; stats, limits and mode answer an object keyed by name) and
// /healthz.
func (a *Accounts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	if strings.HasPrefix(path, "/_fake/") {
		a.serveAdmin(w, r)
		return
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	s := a.servers[name]
	if s == nil {
		a.notFound(w, r, name)
		return
	}
	http.StripPrefix("/"+name, s).ServeHTTP(w, r)
}

// serveAdmin serves /_fake/* for one account (?account=) or for all.
func (a *Accounts) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("account") {
		name := q.Get("account")
		s := a.servers[name]
		if s == nil {
			a.notFound(w, r, name)
			return
		}
		s.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/_fake/mode":
		handleMode(w, r, func(m Mode, d time.Duration) {
			for _, s := range a.servers {
				s.SetMode(m, d)
			}
		}, func() any { return a.each(func(s *Server) any { return s.modeView() }) })
	case "/_fake/limits":
		if r.Method != http.MethodGet {
			http.Error(w, "POST /_fake/limits needs ?account=<name>", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, a.each(func(s *Server) any { return s.Limits() }))
	case "/_fake/stats":
		writeJSON(w, http.StatusOK, a.each(func(s *Server) any { return s.Stats() }))
	case "/_fake/reset":
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		writeJSON(w, http.StatusOK, a.each(func(s *Server) any {
			s.ResetStats()
			return s.Stats()
		}))
	default:
		a.notFound(w, r, "")
	}
}

// each returns f of every account, keyed by name.
func (a *Accounts) each(f func(*Server) any) map[string]any {
	out := make(map[string]any, len(a.servers))
	for name, s := range a.servers {
		out[name] = f(s)
	}
	return out
}

// notFound answers 404 with OpenAI's body for an unknown URL (code null),
// naming the unknown account (if any) and the known ones.
func (a *Accounts) notFound(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("x-request-id", newID("req_", 16))
	msg := fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)
	if name != "" {
		msg += fmt.Sprintf(": no account %q", name)
	}
	msg += fmt.Sprintf(". Accounts are served under /<account>/v1/ and /_fake/...?account=<account>; accounts: %s.", strings.Join(a.names, ", "))
	writeError(w, invalidRequest(http.StatusNotFound, msg, "", ""))
}
