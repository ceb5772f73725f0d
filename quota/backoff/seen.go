package backoff

import (
	"cmp"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// MaxBodyBytes is the most of a raw error body the call path should keep in
// Seen.Body; classification reads no further.
const MaxBodyBytes = 16 << 10

// Seen is what the call path saw of a failed call besides the error itself.
// openai-go drops some of it: an error body that is not OpenAI's error
// object ({"error":"Too Many Requests"}, plain text, a gateway's HTML page)
// leaves no message, or no status at all; a Responses stream's `error` or
// `response.failed` event is an ordinary event, not an error.
type Seen struct {
	// StatusCode and Header are the HTTP answer's (for a stream: at open).
	StatusCode int
	Header     http.Header
	// Body is the raw error body (status >= 400), at most MaxBodyBytes.
	Body []byte
	// EventType and EventData are the stream event that carried the
	// error ("error", "response.failed"), nil when none did.
	EventType string
	EventData []byte
}

// fields are a refusal's code, type and message, wherever they came from.
type fields struct{ code, typ, message string }

// name is the code, or the type when there is no code.
func (f fields) name() string { return cmp.Or(f.code, f.typ) }

// eventFields reads an SSE error event's data, in every shape seen:
//
//	{"error":{"message":"...","type":"server_error","code":null}}          chat completions, vLLM
//	{"type":"error","error":{"type":"too_many_requests","code":"...",...}}   Responses (observed)
//	{"type":"error","code":"rate_limit_exceeded","message":"...",...}        Responses (documented)
//	{"type":"response.failed","response":{"error":{"code":"...","message":"..."}}}
//	{"error":"boom"}
func eventFields(data []byte) fields {
	var ev struct {
		Code     json.RawMessage `json:"code"`
		Type     string          `json:"type"`
		Message  string          `json:"message"`
		Error    json.RawMessage `json:"error"`
		Response struct {
			Error json.RawMessage `json:"error"`
		} `json:"response"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return fields{}
	}
	if f, ok := errorObject(ev.Error); ok {
		return f
	}
	if f, ok := errorObject(ev.Response.Error); ok {
		return f
	}
	f := fields{code: scalar(ev.Code), message: ev.Message}
	if ev.Type != "error" && !strings.HasPrefix(ev.Type, "response.") {
		f.typ = ev.Type
	}
	return f
}

// bodyFields reads an error body that openai-go could not: {"error":"..."},
// a top-level {"message","type","code"} (vLLM's older ErrorResponse, Kong),
// plain text, or an HTML page (its title).
func bodyFields(body []byte) fields {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return fields{}
	}
	if trimmed[0] == '{' {
		var top struct {
			Error   json.RawMessage `json:"error"`
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
			Detail  string          `json:"detail"`
		}
		if json.Unmarshal([]byte(trimmed), &top) != nil {
			return fields{}
		}
		if f, ok := errorObject(top.Error); ok {
			return f
		}
		return fields{code: scalar(top.Code), typ: top.Type, message: cmp.Or(top.Message, top.Detail)}
	}
	if m := htmlTitle.FindStringSubmatch(trimmed); m != nil {
		return fields{message: html.UnescapeString(strings.TrimSpace(m[1]))}
	}
	if strings.HasPrefix(trimmed, "<") {
		return fields{}
	}
	line, _, _ := strings.Cut(trimmed, "\n")
	return fields{message: strings.TrimSpace(line)}
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// errorObject reads an "error" member: an object with code/type/message, or
// a bare string (taken as the message).
func errorObject(raw json.RawMessage) (fields, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return fields{}, false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return fields{message: s}, s != ""
	}
	var obj struct {
		Code    json.RawMessage `json:"code"`
		Type    string          `json:"type"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(raw, &obj) != nil {
		return fields{}, false
	}
	f := fields{code: scalar(obj.Code), typ: obj.Type, message: obj.Message}
	return f, f != fields{}
}

// scalar renders a JSON string or number ("rate_limit_exceeded", 429) as a
// string; "" for null or anything else.
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// statusOfCode maps a code or type seen without an HTTP status (inside a
// stream) to the status the same refusal has over HTTP; 0 when unknown.
func statusOfCode(code string) int {
	c := strings.ToLower(code)
	if n, err := strconv.Atoi(c); err == nil && n >= 400 && n <= 599 {
		return n // Azure and LiteLLM send the status as the code: "429"
	}
	switch c {
	case "rate_limit_exceeded", "rate_limit_error", "rate_limit", "too_many_requests",
		"tokens", "requests", "throttling_error", "throttled", CodeSlowDown:
		return http.StatusTooManyRequests
	case "invalid_api_key", "authentication_error", "unauthorized", "invalid_authentication":
		return http.StatusUnauthorized
	case "permission_error", "permission_denied", "forbidden", "request_forbidden",
		"unsupported_country_region_territory":
		return http.StatusForbidden
	case "server_error", "api_error", "internal_error", "overloaded", "overloaded_error",
		"service_unavailable", "vector_store_timeout":
		return http.StatusInternalServerError
	case "invalid_request_error", "context_length_exceeded", "model_not_found",
		"invalid_prompt", "bad_request", "badrequesterror", "notfounderror", "not_found_error":
		return http.StatusBadRequest
	}
	if strings.HasPrefix(c, "invalid_") {
		return http.StatusBadRequest
	}
	return 0
}

// isAccountWideForbidden reports whether a 403's code or type refuses the
// account (a region block) rather than one request (no access to a model).
func isAccountWideForbidden(code string) bool {
	switch code {
	case "unsupported_country_region_territory", "unsupported_country", "request_forbidden":
		return true
	}
	return false
}

// secretRE matches API keys a provider may echo in a message ("Incorrect API
// key provided: sk-proj-abc...xyz").
var secretRE = regexp.MustCompile(`\b(sk|rk|pk|key)-[A-Za-z0-9_*.\-]{4,}`)

// cleanMessage makes a provider message fit for results: keys masked, at
// most MaxMessageBytes.
func cleanMessage(msg string) string {
	msg = secretRE.ReplaceAllString(msg, "$1-***")
	return truncate(strings.TrimSpace(msg), MaxMessageBytes)
}
