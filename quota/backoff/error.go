package backoff

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind says what sort of failure a provider call met; it picks the backoff
// policy and whether the failure counts against the task.
type Kind string

// The kinds of failure Classify tells apart.
const (
	// KindRateLimit: the provider's per-minute request or token limit was hit
	// (429). Not a failure of the task: it waits and retries.
	KindRateLimit Kind = "rate_limit"
	// KindQuota: the account is out of credit or over a spending limit
	// (insufficient_quota, billing codes, 402). Not a failure of the task;
	// retried after a long wait, typically behind a pause of the account.
	KindQuota Kind = "quota"
	// KindServer: the provider failed (5xx, 529 overloaded, 409 conflict).
	KindServer Kind = "server"
	// KindNetwork: no usable answer came back (dial error, reset, timeout,
	// cut or errored stream, cancelled context). The outcome is unknown.
	KindNetwork Kind = "network"
	// KindInvalid: the request itself is wrong (400, 404, 413, 422...).
	// Permanent: retrying cannot help.
	KindInvalid Kind = "invalid"
	// KindAuth: the key is missing or wrong (401): every call fails the
	// same way, so the worker also pauses the account. Permanent.
	KindAuth Kind = "auth"
	// KindForbidden: the key may not do this request (403: no access to the
	// model, a region block). Permanent for the task; the worker pauses the
	// account only when the refusal is account-wide (Error.AccountWide) or
	// 403s keep coming for different models.
	KindForbidden Kind = "forbidden"
	// KindUnknown: anything Classify does not recognise.
	KindUnknown Kind = "unknown"
)

// MaxMessageBytes is the longest provider message an Error keeps.
const MaxMessageBytes = 500

// CodeSlowDown is the provider's code asking to reduce the request rate and
// grow it back slowly (OpenAI answers it with a 503).
const CodeSlowDown = "slow_down"

// Error is a classified provider failure returned by the worker's handler.
// Find it with errors.As.
type Error struct {
	Kind Kind
	// RetryAfter is how long the provider asked us to wait; 0 when it gave
	// no figure.
	RetryAfter time.Duration
	// Permanent is true when retrying the same request cannot succeed
	// (invalid, auth); the worker then skips asynq's retries.
	Permanent bool
	// AccountWide is set on a KindForbidden refusal whose code says it
	// refuses the whole account (unsupported_country_region_territory)
	// rather than one request.
	AccountWide bool
	// StatusCode is the HTTP status of the provider's answer, 0 when none.
	StatusCode int
	// Code is the provider's error code ("rate_limit_exceeded"), or its
	// error type when it gave no code.
	Code string
	// Message is the provider's human-readable message, at most
	// MaxMessageBytes long, for task results. It is kept out of Error()
	// because providers sometimes echo part of the request or key in it.
	Message string
	// Err is the underlying error.
	Err error

	event string // the stream event that carried the refusal, if any
}

// Error summarises the failure for logs: kind, status, code, retry-after and,
// for errors without an HTTP status, the underlying error (or, when there is
// none, Message).
func (e *Error) Error() string {
	if e == nil {
		return "backoff: <nil>"
	}
	var b strings.Builder
	b.WriteString(string(e.Kind))
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": status %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	switch {
	case e.event != "":
		// The event's data holds the provider's message: keep it out.
		fmt.Fprintf(&b, ": in-stream %q event", e.event)
	case e.StatusCode == 0 && e.Err != nil:
		fmt.Fprintf(&b, ": %v", e.Err)
	case e.StatusCode == 0 && e.Message != "":
		// Built by our own code (no provider answer, no cause): the
		// message is ours and safe to show.
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Permanent {
		b.WriteString(", permanent")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %v", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Deferral is an error that is not a failure: "come back after Delay"
// (quota headroom, a paused account, an answer not yet stored). The worker
// returns it so asynq re-schedules the task without counting a failed
// attempt.
type Deferral struct {
	Delay  time.Duration
	Reason string // human readable, e.g. "tokens bucket empty"
}

// Error describes the deferral; it reads "wait <delay>: <reason>".
func (w *Deferral) Error() string {
	if w == nil {
		return "wait"
	}
	if w.Reason == "" {
		return fmt.Sprintf("wait %v", w.Delay)
	}
	return fmt.Sprintf("wait %v: %s", w.Delay, w.Reason)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
