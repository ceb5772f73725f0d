package fakeopenai

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TaskIDHeader is the request header whose value keys Stats.ByTask.
const TaskIDHeader = "X-Promptq-Task-Id"

// maxBody bounds the request body the fake reads.
const maxBody = 8 << 20

// Server is the fake OpenAI provider. It is an http.Handler; create it with
// New. All methods are safe for concurrent use.
type Server struct {
	cfg Config

	mu        sync.Mutex
	mode      Mode
	modeUntil time.Time // zero: the mode lasts until changed
	requests  *bucket   // nil when RPM is unlimited
	tokens    *bucket   // nil when TPM is unlimited
	stats     Stats
	charger   *charger
	noise     *rand.Rand      // charge noise, seeded with Config.Seed
	answered  map[string]bool // task IDs with a successful answer
	lastAdmit time.Time

	// onLatency, when set (by tests), is called as an admitted request starts
	// its latency, so tests can act while it is in flight without sleeping.
	onLatency func()
}

// New returns a fake server. cfg is completed with WithDefaults; an invalid
// cfg panics, since it is a programming error in a test or demo
// (call cfg.Validate first to get an error instead).
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.WithDefaults()
	cfg.Models = slices.Clone(cfg.Models)
	return &Server{
		cfg:      cfg,
		mode:     ModeNormal,
		requests: newBucket(cfg.RPM, cfg.Burst, 1),
		tokens:   newBucket(cfg.TPM, cfg.Burst, 0),
		stats:    Stats{ByTask: map[string]int{}},
		charger:  newCharger(cfg),
		noise:    rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		answered: map[string]bool{},
	}
}

// ServeHTTP serves the OpenAI endpoints (with or without the /v1 prefix),
// the /_fake admin endpoints and /healthz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
		return
	case "/_fake/mode":
		s.serveMode(w, r)
		return
	case "/_fake/limits":
		s.serveLimits(w, r)
		return
	case "/_fake/stats":
		writeJSON(w, http.StatusOK, s.Stats())
		return
	case "/_fake/reset":
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		s.ResetStats()
		writeJSON(w, http.StatusOK, s.Stats())
		return
	}
	var parse func([]byte) (*call, *apiError)
	var write func(http.ResponseWriter, *call, *answer)
	switch strings.TrimPrefix(path, "/v1") {
	case "/responses":
		parse, write = parseResponses, s.writeResponses
	case "/chat/completions":
		parse, write = parseChat, s.writeChat
	}
	if parse == nil || r.Method != http.MethodPost {
		w.Header().Set("x-request-id", newID("req_", 16))
		writeError(w, invalidRequest(http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, path), "", ""))
		return
	}
	s.serveAPI(w, r, parse, write)
}

// setHeaders sets the headers every API answer carries.
func setHeaders(w http.ResponseWriter, start time.Time, rl []header) {
	h := w.Header()
	for _, kv := range rl {
		h.Set(kv.key, kv.value)
	}
	h.Set("openai-organization", "org-fake")
	h.Set("openai-version", "2020-10-01")
	h.Set("openai-processing-ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// abort drops the connection without finishing the answer: hijack and close
// where the connection allows it (HTTP/1), else abort the handler, which
// resets the stream.
func abort(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		_ = conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newID returns prefix + 2n random hex digits.
func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return prefix + hex.EncodeToString(b)
}
