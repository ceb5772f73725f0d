package fakeopenai

import (
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
	x := &exchange{s: s, w: w, r: r, start: time.Now()}
	w.Header().Set("x-request-id", newID("req_", 16))
	x.mode = s.arrive(r.Header.Get(TaskIDHeader))
	defer x.end(nil)
	if x.mode == ModeReset {
		x.end(&s.stats.Resets)
		abort(w)
		return
	}
	c := x.read(parse)
	if c == nil {
		return
	}
	if x.mode == ModeInsufficientQuota {
		x.insufficientQuota()
		return
	}
	rl, ok := x.admit(c)
	if !ok || x.modeError(rl) {
		return
	}
	x.answer(c, rl, write)
}

// exchange is one API request on its way through serveAPI.
type exchange struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	start time.Time // real time, for openai-processing-ms
	mode  Mode      // the mode in force when the request arrived
	// once makes the counters final before the last byte goes out, so a
	// client that has its answer sees them in Stats: end (or the answer's
	// done) counts the outcome and leaves in_flight once.
	once sync.Once
}

// end counts the outcome in counter (when not nil) and leaves in_flight,
// the first time only.
func (x *exchange) end(counter *int) {
	x.once.Do(func() { x.s.leave(counter) })
}

// fail ends the request with e, counted in counter.
func (x *exchange) fail(e *apiError, rl []header, counter *int) {
	x.end(counter)
	setHeaders(x.w, x.start, rl)
	writeError(x.w, e)
}

// read checks the key, reads and parses the body and checks the model; it
// returns nil when it has answered with an error.
func (x *exchange) read(parse func([]byte) (*call, *apiError)) *call {
	s := x.s
	if e := s.checkAuth(x.r.Header.Get("Authorization"), x.mode); e != nil {
		x.fail(e, s.rateHeaders(), &s.stats.AuthErrors)
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(x.r.Body, maxBody))
	if err != nil {
		x.fail(invalidRequest(400, badJSONMessage, "", ""), s.rateHeaders(), &s.stats.BadRequests)
		return nil
	}
	c, e := parse(body)
	if e == nil && !s.serves(c.model, x.mode) {
		e = invalidRequest(http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", c.model), "", "model_not_found")
	}
	if e != nil {
		x.fail(e, s.rateHeaders(), &s.stats.BadRequests)
		return nil
	}
	c.taskID = x.r.Header.Get(TaskIDHeader)
	c.chargeBase, c.usageIn = s.charger.base(c.model, c.instructions, c.texts)
	return c
}

// insufficientQuota answers 429 insufficient_quota (ModeInsufficientQuota).
func (x *exchange) insufficientQuota() {
	x.s.quotaError()
	x.end(nil)
	setHeaders(x.w, x.start, x.s.rateHeaders())
	writeError(x.w, &apiError{
		status:  http.StatusTooManyRequests,
		Message: "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
		Type:    "insufficient_quota", Code: strp("insufficient_quota"),
	})
}

// admit debits the call from the rate limits, or answers 429 with
// retry-after and reports false.
func (x *exchange) admit(c *call) ([]header, bool) {
	rl, wait, e := x.s.admit(c)
	if e == nil {
		return rl, true
	}
	x.end(nil)
	setHeaders(x.w, x.start, rl)
	x.w.Header().Set("retry-after", retryAfterSeconds(wait))
	if x.s.cfg.RetryAfter != RetryAfterSeconds {
		x.w.Header().Set("retry-after-ms", strconv.FormatInt(wait.Milliseconds(), 10))
	}
	writeError(x.w, e)
	return nil, false
}

// modeError answers an admitted request with the error its mode calls for
// (ModeSlowDown, ModeServerError) and reports whether it did.
func (x *exchange) modeError(rl []header) bool {
	s := x.s
	switch x.mode {
	case ModeSlowDown:
		x.fail(&apiError{
			status:  http.StatusServiceUnavailable,
			Message: "Please reduce your request rate to its original level, maintain a consistent rate for at least 15 minutes, and then gradually increase it.",
			Type:    "slow_down", Code: strp("slow_down"),
		}, rl, &s.stats.SlowDowns)
		return true
	case ModeServerError:
		x.fail(&apiError{
			status:  s.cfg.ServerErrorStatus,
			Message: "The server had an error while processing your request. Sorry about that!",
			Type:    "server_error",
		}, rl, &s.stats.ServerErrors)
		return true
	}
	return false
}

// answer waits the latency, then writes the answer (cut short in
// ModeTruncate).
func (x *exchange) answer(c *call, rl []header, write func(http.ResponseWriter, *call, *answer)) {
	s := x.s
	if s.onLatency != nil {
		s.onLatency()
	}
	if !sleep(x.r.Context(), s.latency(x.mode)) {
		x.end(&s.stats.Canceled) // the client went away; its slot is freed
		return
	}
	n := c.outputTokens(s.cfg.OutputTokens)
	a := &answer{
		text:         OutputText(c.lastUser, n),
		inputTokens:  c.usageIn,
		taskID:       c.taskID,
		outputTokens: n,
		capped:       n < s.cfg.OutputTokens,
		truncate:     x.mode == ModeTruncate,
		created:      s.cfg.Clock(),
	}
	a.done = func() {
		x.once.Do(func() { s.succeeded(a) })
	}
	setHeaders(x.w, x.start, rl)
	write(x.w, c, a)
	if a.truncate {
		x.end(&s.stats.Truncated)
		abort(x.w)
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
