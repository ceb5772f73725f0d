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

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// ResetStats clears the counters (but not InFlight, which tracks live
// requests). Rate-limit buckets and the mode are kept.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByTask: map[string]int{}, InFlight: s.stats.InFlight, MaxInFlight: s.stats.InFlight}
	s.answered = map[string]bool{}
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

// answer is what a successful request gets.
type answer struct {
	text         string
	inputTokens  int
	outputTokens int
	capped       bool // generation stopped at the request's max tokens
	truncate     bool // ModeTruncate: cut the answer short
	created      time.Time
	taskID       string
	// done counts the success; writers call it just before the last bytes,
	// never in truncate mode.
	done func()
}

// serveAPI runs one API request through the pipeline: count, auth, parse,
// quota mode, rate limits, server-error mode, latency, answer.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, parse func([]byte) (*call, *apiError), write func(http.ResponseWriter, *call, *answer)) {
	start := time.Now() // real time, for openai-processing-ms
	w.Header().Set("x-request-id", newID("req_", 16))
	mode := s.arrive(r.Header.Get(TaskIDHeader))
	// Counters are final before the last byte goes out, so a client that has
	// its answer sees them in Stats: end counts the outcome and leaves
	// in_flight once.
	var once sync.Once
	end := func(counter *int) {
		once.Do(func() { s.leave(counter) })
	}
	defer end(nil)
	fail := func(e *apiError, rl []header, counter *int) {
		end(counter)
		setHeaders(w, start, rl)
		writeError(w, e)
	}

	if mode == ModeReset {
		end(&s.stats.Resets)
		abort(w)
		return
	}
	if e := s.checkAuth(r.Header.Get("Authorization"), mode); e != nil {
		fail(e, s.rateHeaders(), &s.stats.AuthErrors)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		fail(invalidRequest(400, badJSONMessage, "", ""), s.rateHeaders(), &s.stats.BadRequests)
		return
	}
	c, e := parse(body)
	if e == nil && !s.serves(c.model, mode) {
		e = invalidRequest(http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", c.model), "", "model_not_found")
	}
	if e != nil {
		fail(e, s.rateHeaders(), &s.stats.BadRequests)
		return
	}
	c.taskID = r.Header.Get(TaskIDHeader)
	c.chargeBase, c.usageIn = s.charger.base(c.model, c.instructions, c.texts)
	if mode == ModeInsufficientQuota {
		s.quotaError()
		end(nil)
		setHeaders(w, start, s.rateHeaders())
		writeError(w, &apiError{
			status:  http.StatusTooManyRequests,
			Message: "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
			Type:    "insufficient_quota", Code: strp("insufficient_quota"),
		})
		return
	}
	rl, wait, e := s.admit(c)
	if e != nil {
		end(nil)
		setHeaders(w, start, rl)
		w.Header().Set("retry-after", retryAfterSeconds(wait))
		if s.cfg.RetryAfter != RetryAfterSeconds {
			w.Header().Set("retry-after-ms", strconv.FormatInt(wait.Milliseconds(), 10))
		}
		writeError(w, e)
		return
	}
	if mode == ModeSlowDown {
		fail(&apiError{
			status:  http.StatusServiceUnavailable,
			Message: "Please reduce your request rate to its original level, maintain a consistent rate for at least 15 minutes, and then gradually increase it.",
			Type:    "slow_down", Code: strp("slow_down"),
		}, rl, &s.stats.SlowDowns)
		return
	}
	if mode == ModeServerError {
		fail(&apiError{
			status:  s.cfg.ServerErrorStatus,
			Message: "The server had an error while processing your request. Sorry about that!",
			Type:    "server_error",
		}, rl, &s.stats.ServerErrors)
		return
	}
	if s.onLatency != nil {
		s.onLatency()
	}
	if !sleep(r.Context(), s.latency(mode)) {
		end(&s.stats.Canceled) // the client went away; its slot is freed
		return
	}
	n := c.outputTokens(s.cfg.OutputTokens)
	a := &answer{
		text:         OutputText(c.lastUser, n),
		inputTokens:  c.usageIn,
		taskID:       c.taskID,
		outputTokens: n,
		capped:       n < s.cfg.OutputTokens,
		truncate:     mode == ModeTruncate,
		created:      s.cfg.Clock(),
	}
	a.done = func() {
		once.Do(func() { s.succeeded(a) })
	}
	setHeaders(w, start, rl)
	write(w, c, a)
	if a.truncate {
		end(&s.stats.Truncated)
		abort(w)
	}
}

// arrive counts a new API request and returns the mode in force.
func (s *Server) arrive(taskID string) Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	st := &s.stats
	st.Requests++
	if st.FirstRequestAt == "" {
		st.FirstRequestAt = stamp(now)
	}
	if taskID != "" {
		st.ByTask[taskID]++
		if s.answered[taskID] {
			st.CallsAfterAnswered++
		}
	}
	st.InFlight++
	st.MaxInFlight = max(st.MaxInFlight, st.InFlight)
	mode := s.modeLocked(now)
	if mode == ModeInsufficientQuota && st.FirstQuotaErrorAt != "" {
		st.RequestsAfterFirstQuotaError++
	}
	return mode
}

// leave ends a request: it increments counter (when not nil) and InFlight
// goes down.
func (s *Server) leave(counter *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if counter != nil {
		*counter++
	}
	s.stats.InFlight--
}

func (s *Server) quotaError() {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.QuotaErrors++
	if st.FirstQuotaErrorAt == "" {
		st.FirstQuotaErrorAt = stamp(s.cfg.Clock())
		st.InFlightAtFirstQuotaError = st.InFlight - 1
	}
}

// succeeded ends a successful request.
func (s *Server) succeeded(a *answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.InFlight--
	s.stats.OK++
	s.stats.InputTokens += a.inputTokens
	s.stats.OutputTokens += a.outputTokens
	s.stats.LastOKAt = stamp(s.cfg.Clock())
	if a.taskID != "" {
		s.answered[a.taskID] = true
	}
}

// serves reports whether the server answers for model in mode.
func (s *Server) serves(model string, mode Mode) bool {
	switch {
	case mode == ModeModelNotFound, model == "bad-model":
		return false
	case len(s.cfg.Models) > 0:
		return slices.Contains(s.cfg.Models, model)
	}
	return true
}

// checkAuth checks the Authorization header; in ModeUnauthorized every key
// is refused.
func (s *Server) checkAuth(h string, mode Mode) *apiError {
	key, ok := strings.CutPrefix(h, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return invalidRequest(http.StatusUnauthorized, "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.", "", "")
	}
	if mode == ModeUnauthorized || (s.cfg.APIKey != "" && key != s.cfg.APIKey) {
		return invalidRequest(http.StatusUnauthorized, fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", maskKey(key)), "", "invalid_api_key")
	}
	return nil
}

// maskKey shows only the ends of a key, as OpenAI does.
func maskKey(k string) string {
	if len(k) <= 8 {
		return "****"
	}
	return k[:3] + "*****" + k[len(k)-4:]
}

// admit debits one request and the call's charge (input charge, with its
// noise drawn now, plus the output allowance) from the buckets, or, when
// either cannot pay, debits nothing and returns the 429 to send and how long
// to wait. The header values are returned either way.
func (s *Server) admit(c *call) ([]header, time.Duration, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Clock()
	u := 0.0
	if s.cfg.ChargeNoise > 0 {
		u = 2*s.noise.Float64() - 1
	}
	cost := noisy(c.chargeBase, s.cfg.ChargeNoise, u) + c.outputAllowance()
	for _, b := range []struct {
		b      *bucket
		n      int
		kind   string
		window string
	}{{s.requests, 1, "requests", "requests per min (RPM)"}, {s.tokens, cost, "tokens", "tokens per min (TPM)"}} {
		if b.b == nil {
			continue
		}
		b.b.refill(now)
		if wait := b.b.wait(float64(b.n)); wait > 0 {
			s.stats.RateLimited++
			used := int(b.b.capacity - b.b.level + 0.999999)
			msg := fmt.Sprintf("Rate limit reached for %s in organization org-fake on %s: Limit %d, Used %d, Requested %d. Please try again in %s. Visit https://platform.openai.com/account/rate-limits to learn more.",
				c.model, b.window, b.b.limit, used, b.n, wait)
			if float64(b.n) > b.b.capacity {
				// Never satisfiable: OpenAI words this one differently.
				msg = fmt.Sprintf("Request too large for %s in organization org-fake on %s: Limit %d, Requested %d. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
					c.model, b.window, b.b.limit, b.n)
			}
			return s.rateHeadersLocked(now), wait, &apiError{
				status: http.StatusTooManyRequests, Message: msg,
				Type: b.kind, Code: strp("rate_limit_exceeded"),
			}
		}
	}
	if s.requests != nil {
		s.requests.level--
	}
	if s.tokens != nil {
		s.tokens.level -= float64(cost)
	}
	s.stats.TokensCharged += cost
	s.stats.Admitted++
	s.lastAdmit = now
	return s.rateHeadersLocked(now), 0, nil
}

// header is one response header.
type header struct{ key, value string }

// rateHeaders returns the x-ratelimit-* headers for the bucket levels now.
func (s *Server) rateHeaders() []header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rateHeadersLocked(s.cfg.Clock())
}

func (s *Server) rateHeadersLocked(now time.Time) []header {
	var hs []header
	for _, b := range []struct {
		b    *bucket
		kind string
	}{{s.requests, "requests"}, {s.tokens, "tokens"}} {
		if b.b == nil {
			continue
		}
		b.b.refill(now)
		st := b.b.snapshot()
		hs = append(hs,
			header{"x-ratelimit-limit-" + b.kind, strconv.Itoa(st.limit)},
			header{"x-ratelimit-remaining-" + b.kind, strconv.Itoa(st.remaining)},
			header{"x-ratelimit-reset-" + b.kind, formatReset(st.reset)})
	}
	return hs
}

// latency is how long an admitted request takes in mode.
func (s *Server) latency(mode Mode) time.Duration {
	d := s.cfg.Latency
	if j := s.cfg.Jitter; j > 0 {
		d += time.Duration(rand.Int64N(int64(2*j)+1)) - j
	}
	if mode == ModeSlow {
		d += s.cfg.SlowBy
	}
	return max(d, 0)
}

// modeJSON is the body of /_fake/mode, in both directions.
type modeJSON struct {
	Mode Mode   `json:"mode"`
	For  string `json:"for,omitempty"`
}

// serveMode handles GET and POST /_fake/mode.
func (s *Server) serveMode(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		m, d, err := decodeMode(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetMode(m, d)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, s.modeView())
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
