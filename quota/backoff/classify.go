package backoff

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/promptq/promptq/internal/decimal"
	"github.com/promptq/promptq/quota"
)

// Classify sorts a provider call's error into a Kind and gathers what the
// provider said about when to retry. now turns absolute times in headers
// into durations. It returns nil for a nil error, and err itself when err
// already holds an *Error. It is ClassifyCall with nothing seen beyond the
// error: openai-go's *openai.Error still carries the status and headers, and
// an *ssestream.StreamError the event.
func Classify(err error, now time.Time) *Error {
	return ClassifyCall(err, Seen{}, now)
}

// ClassifyCall is Classify given everything the call path saw: the HTTP
// answer's status, headers and raw body (which openai-go drops when the
// body is not OpenAI's error object) and, for a stream, the event that ended
// it. A refusal reads the same whether it came as an HTTP status, inside a
// stream or from a gateway in front of the provider.
//
// The kind of an API error comes from its HTTP status and the provider's
// code or type, never from the message text; the message is only read for a
// "try again in 51ms" figure.
func ClassifyCall(err error, seen Seen, now time.Time) *Error {
	if err == nil {
		return nil
	}
	var classified *Error
	if errors.As(err, &classified) && classified != nil {
		return classified
	}
	var streamErr *ssestream.StreamError
	if seen.EventData == nil && errors.As(err, &streamErr) && streamErr != nil {
		seen.EventType, seen.EventData = streamErr.Event.Type, streamErr.Event.Data
	}
	if seen.EventData != nil {
		// An error event in a stream whose HTTP status was 200: only the
		// event says what happened.
		e := classifyEvent(err, eventFields(seen.EventData), now)
		e.event = cmp.Or(seen.EventType, "error")
		return e
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr != nil {
		f := fields{code: apiErr.Code, typ: apiErr.Type, message: apiErr.Message}
		if f.code == "" && f.typ == "" && f.message == "" {
			// Not OpenAI's error object: text, HTML, {"message": ...}.
			f = bodyFields(seen.Body)
		}
		h := seen.Header
		if apiErr.Response != nil {
			h = apiErr.Response.Header
		}
		return classifyHTTP(err, apiErr.StatusCode, h, f, now)
	}
	if seen.StatusCode >= 400 {
		// openai-go could not decode the error body ({"error":"Too Many
		// Requests"}) and returned a JSON error: the raw answer still says
		// what happened.
		return classifyHTTP(err, seen.StatusCode, seen.Header, bodyFields(seen.Body), now)
	}
	if isNetwork(err) {
		return &Error{Kind: KindNetwork, Err: err}
	}
	return &Error{Kind: KindUnknown, Err: err}
}

// classifyHTTP classifies an answer with an HTTP error status.
func classifyHTTP(err error, status int, h http.Header, f fields, now time.Time) *Error {
	code, typ := strings.ToLower(f.code), strings.ToLower(f.typ)
	e := &Error{
		Kind:       KindUnknown,
		StatusCode: status,
		Code:       f.name(),
		Message:    cleanMessage(f.message),
		Err:        err,
	}
	switch {
	case isQuotaCode(code) || isQuotaCode(typ) || status == http.StatusPaymentRequired:
		// Checked before the status: OpenAI's images API answers 400
		// billing_hard_limit_reached, which is about money, not the request.
		e.Kind = KindQuota
	case status == http.StatusTooManyRequests, code == CodeSlowDown:
		// OpenAI documents slow_down as a 503 ("reduce your request rate"):
		// it is about our rate, not the provider's health.
		e.Kind = KindRateLimit
	case status >= 500, strings.HasPrefix(code, "overloaded"):
		e.Kind = KindServer
	case status < 400 && (isServerCode(code) || isServerCode(typ)):
		// Without an error status (a stream's event), the code decides. With
		// a 4xx the status does: Ollama answers 404 with type api_error.
		e.Kind = KindServer
	case status == http.StatusConflict:
		// Not in OpenAI's documented error list, but its SDKs retry 409
		// (a conflicting request or lock still in progress): transient and
		// on the provider's side, so server rather than invalid.
		e.Kind = KindServer
	case status == http.StatusRequestTimeout:
		e.Kind = KindNetwork
	case status == http.StatusUnauthorized:
		e.Kind, e.Permanent = KindAuth, true
	case status == http.StatusForbidden:
		e.Kind, e.Permanent = KindForbidden, true
		e.AccountWide = isAccountWideForbidden(code) || isAccountWideForbidden(typ)
	case status >= 400:
		// 400, 404, 413, 422 and the rest of 4xx: the request is at fault.
		e.Kind, e.Permanent = KindInvalid, true
	}
	if !e.Permanent {
		e.RetryAfter = retryAfter(h, e.Kind, f.message, now)
	}
	return e
}

// classifyEvent classifies an error event inside a stream from its code or
// type, as the same refusal over HTTP would be. The stream's headers were
// sent with its 200, before the refusal, so only the event's own "try again
// in" figure counts. An event whose code says nothing known is a network
// failure: the outcome is unknown.
func classifyEvent(err error, f fields, now time.Time) *Error {
	status := statusOfCode(f.code)
	if status == 0 {
		status = statusOfCode(f.typ)
	}
	e := classifyHTTP(err, status, nil, f, now)
	e.StatusCode = 0 // the HTTP status was 200; the kind came from the event
	if e.Kind == KindUnknown {
		e.Kind = KindNetwork
	}
	return e
}

// retryAfter picks the wait the provider asked for. Quota errors get none:
// per-minute bucket resets and retry-after describe the rate limiter, not
// billing, and the worker pauses the account for its configured time. For a
// rate limit it takes the most precise signal: retry-after-ms, then the
// message's "try again in 51ms" or "retry after 7 seconds" unless it is
// longer than retry-after, then retry-after (whole seconds, rounded up by
// the provider) capped by the reset of the bucket that ran out (reset is when
// that bucket is full, so one request fits no later), then that reset alone. Other kinds use retry-after-ms, then
// retry-after. A zero, negative or unreadable signal never hides a valid
// one. 0 when nothing usable was given.
func retryAfter(h http.Header, kind Kind, message string, now time.Time) time.Duration {
	if kind == KindQuota {
		return 0
	}
	ms := positive(quota.ParseRetryAfter(http.Header{"Retry-After-Ms": headerValues(h, "Retry-After-Ms")}, now))
	sec := positive(quota.ParseRetryAfter(http.Header{"Retry-After": headerValues(h, "Retry-After")}, now))
	if kind != KindRateLimit {
		return cmp.Or(ms, sec)
	}
	if ms > 0 {
		return ms
	}
	if d, ok := messageRetryAfter(message); ok && (sec == 0 || d <= sec) {
		// The unrounded figure behind a whole-second retry-after. One
		// longer than retry-after is another bucket's: the header rules.
		return d
	}
	var bound time.Duration
	info := quota.ParseHeaders(h, now)
	for _, b := range []quota.Bucket{info.Requests, info.Tokens} {
		if b.Remaining == 0 && b.Reset > 0 {
			bound = max(bound, b.Reset)
		}
	}
	if sec > 0 && bound > 0 {
		return min(sec, bound)
	}
	return cmp.Or(sec, bound)
}

// positive returns d when ok and d > 0, else 0.
func positive(d time.Duration, ok bool) time.Duration {
	if ok && d > 0 {
		return d
	}
	return 0
}

// headerValues returns h's values for a canonical key, matching any case.
func headerValues(h http.Header, key string) []string {
	if v, ok := h[key]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// messageRetryAfter finds "try again in 8m28.9s", "try again in 20ms",
// "try again in 1.5 seconds" or Azure's "retry after 6 seconds" in a
// provider message.
func messageRetryAfter(msg string) (time.Duration, bool) {
	lower := strings.ToLower(msg)
	rest := ""
	for _, marker := range []string{"try again in ", "retry after "} {
		if i := strings.Index(lower, marker); i >= 0 {
			rest = lower[i+len(marker):]
			break
		}
	}
	if rest == "" {
		return 0, false
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return 0, false
	}
	figure := strings.TrimRight(fields[0], ".,;:)")
	unit := ""
	if len(fields) > 1 {
		unit = fields[1]
	}
	if f, err := strconv.ParseFloat(figure, 64); err == nil && decimal.Valid(figure) {
		scale := time.Second
		switch {
		case strings.HasPrefix(unit, "ms"), strings.HasPrefix(unit, "millisecond"):
			scale = time.Millisecond
		case strings.HasPrefix(unit, "min"):
			scale = time.Minute
		}
		if f <= 0 || f*float64(scale) > float64(quota.MaxHeaderDuration) {
			return 0, false
		}
		return time.Duration(f * float64(scale)), true
	}
	return quota.ParseResetDuration(figure)
}

// isQuotaCode reports whether a provider code or type means "out of credit
// or over a spending limit" rather than "too fast".
func isQuotaCode(code string) bool {
	if code == "" {
		return false
	}
	c := strings.NewReplacer("_", "", "-", "", " ", "").Replace(code)
	return strings.Contains(c, "insufficientquota") ||
		strings.Contains(c, "billing") ||
		strings.Contains(c, "spendlimit") ||
		strings.Contains(c, "spendinglimit")
}

// isServerCode reports whether a provider code or type blames the provider.
func isServerCode(code string) bool {
	switch code {
	case "overloaded", "overloaded_error", "server_error", "api_error", "service_unavailable":
		return true
	}
	return false
}

// isNetwork reports whether err means no usable answer came back: a
// transport failure, a cut stream, a timeout or a cancelled context.
func isNetwork(err error) bool {
	for _, target := range []error{
		context.Canceled, context.DeadlineExceeded,
		io.ErrUnexpectedEOF, io.EOF,
		syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var urlErr *url.Error
	var netErr net.Error
	return errors.As(err, &urlErr) || errors.As(err, &netErr)
}
