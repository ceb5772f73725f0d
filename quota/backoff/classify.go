package backoff

import (
	"cmp"
	"context"
	"encoding/json"
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

	"github.com/promptq/promptq/quota"
)

// Classify sorts a provider call's error into a Kind and gathers what the
// provider said about when to retry. now turns absolute times in headers
// into durations. It returns nil for a nil error, and err itself when err
// already holds an *Error.
//
// The kind of an API error comes from its HTTP status and the provider's
// code or type, never from the message text; the message is only read for a
// "try again in 8m28.9s" figure when no header gave one.
func Classify(err error, now time.Time) *Error {
	if err == nil {
		return nil
	}
	var classified *Error
	if errors.As(err, &classified) && classified != nil {
		return classified
	}
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr != nil {
		return classifyAPI(err, apiErr, now)
	}
	var streamErr *ssestream.StreamError
	if errors.As(err, &streamErr) && streamErr != nil {
		// An "error" event in the middle of an SSE stream: the HTTP status
		// was 200, so only the event body says what happened. The request
		// may have been billed; the outcome is unknown.
		code, msg := streamErrorFields(streamErr.Event.Data)
		return &Error{Kind: KindNetwork, Code: code, Message: truncate(msg, MaxMessageBytes), Err: err}
	}
	if isNetwork(err) {
		return &Error{Kind: KindNetwork, Err: err}
	}
	return &Error{Kind: KindUnknown, Err: err}
}

// classifyAPI classifies an error the provider answered with an HTTP status.
func classifyAPI(err error, apiErr *openai.Error, now time.Time) *Error {
	status := apiErr.StatusCode
	code, typ := strings.ToLower(apiErr.Code), strings.ToLower(apiErr.Type)
	e := &Error{
		Kind:       KindUnknown,
		StatusCode: status,
		Code:       cmp.Or(apiErr.Code, apiErr.Type),
		Message:    truncate(apiErr.Message, MaxMessageBytes),
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
	case status >= 500 || isServerCode(code) || isServerCode(typ):
		e.Kind = KindServer
	case status == http.StatusConflict:
		// Not in OpenAI's documented error list, but its SDKs retry 409
		// (a conflicting request or lock still in progress): transient and
		// on the provider's side, so server rather than invalid.
		e.Kind = KindServer
	case status == http.StatusRequestTimeout:
		e.Kind = KindNetwork
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind, e.Permanent = KindAuth, true
	case status >= 400:
		// 400, 404, 413, 422 and the rest of 4xx: the request is at fault.
		e.Kind, e.Permanent = KindInvalid, true
	}
	if !e.Permanent {
		var h http.Header
		if apiErr.Response != nil {
			h = apiErr.Response.Header
		}
		e.RetryAfter = retryAfter(h, e.Kind, apiErr.Message, now)
	}
	return e
}

// retryAfter picks the wait the provider asked for, in order: retry-after-ms,
// retry-after, the reset of the bucket that ran out (the longer if both did),
// then a "try again in ..." figure in the message. 0 when none is given.
func retryAfter(h http.Header, kind Kind, message string, now time.Time) time.Duration {
	info := quota.ParseHeaders(h, now)
	if info.RetryAfter > 0 {
		return info.RetryAfter
	}
	if kind != KindRateLimit && kind != KindQuota {
		return 0
	}
	var d time.Duration
	for _, b := range []quota.Bucket{info.Requests, info.Tokens} {
		if b.Remaining == 0 && b.Reset > 0 {
			d = max(d, b.Reset)
		}
	}
	if d > 0 {
		return d
	}
	d, _ = messageRetryAfter(message)
	return d
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
	if f, err := strconv.ParseFloat(figure, 64); err == nil && isDecimal(figure) {
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

// streamErrorFields pulls the code (or type) and message out of an SSE error
// event's data, e.g. {"error":{"message":"...","type":"server_error","code":null}}
// or Anthropic's {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}.
func streamErrorFields(data []byte) (code, message string) {
	var outer struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &outer) != nil || len(outer.Error) == 0 {
		return "", ""
	}
	var s string
	if json.Unmarshal(outer.Error, &s) == nil {
		return "", s
	}
	var inner map[string]any
	if json.Unmarshal(outer.Error, &inner) != nil {
		return "", ""
	}
	str := func(k string) string {
		switch v := inner[k].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	return cmp.Or(str("code"), str("type")), str("message")
}

// isDecimal reports whether s is digits with at most one dot.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
