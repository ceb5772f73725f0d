package httpapi

import (
	"net/http"
)

// ProblemTypePrefix starts the "type" URI of every problem; the stable code
// follows it ("urn:promptq:problem:task_not_found"). The URIs name problems,
// they are not meant to be fetched.
const ProblemTypePrefix = "urn:promptq:problem:"

// Stable problem codes. Clients branch on these, never on title or detail.
const (
	CodeUnauthorized       = "unauthorized"           // 401: missing or wrong bearer token
	CodeHostNotAllowed     = "host_not_allowed"       // 403: Host header not in the allow-list (DNS rebinding)
	CodeOriginNotAllowed   = "origin_not_allowed"     // 403: a cross-origin browser request
	CodeReadOnly           = "read_only"              // 403: the server is read-only
	CodeNotFound           = "not_found"              // 404: no such route
	CodeAccountNotFound    = "account_not_found"      // 404: the account is not known
	CodeTenantNotFound     = "tenant_not_found"       // 404: the tenant has no budget
	CodeTaskNotFound       = "task_not_found"         // 404: no queue holds the task
	CodeMethodNotAllowed   = "method_not_allowed"     // 405
	CodeDuplicateTask      = "duplicate_task"         // 409: a task with this id exists (see location)
	CodeAmbiguousTask      = "ambiguous_task"         // 409: several queues hold the id; name one with ?queue=
	CodeNoAccount          = "no_account"             // 409: no account is known yet
	CodeBodyTooLarge       = "body_too_large"         // 413: the request body is over the server's limit
	CodeTaskTooLarge       = "task_too_large"         // 413: one task is over the task size limit
	CodeUnsupportedMedia   = "unsupported_media_type" // 415: the body is not application/json
	CodeTooManyRequests    = "too_many_requests"      // 429: too many requests in flight from this client
	CodeInvalidJSON        = "invalid_json"           // 400: the body is not the JSON expected
	CodeInvalidField       = "invalid_field"          // 400: a field is missing or out of range (see field)
	CodeAccountRequired    = "account_required"       // 400: several accounts are known; name one with ?account=
	CodeUnavailable        = "unavailable"            // 503: Redis failed or the server is shutting down
	CodeEnqueueFailed      = "enqueue_failed"         // 503: a valid task could not be stored; retry
	CodeInternal           = "internal"               // 500
	problemContentType     = "application/problem+json"
	problemContentTypeUTF8 = problemContentType + "; charset=utf-8"
)

// Problem is the body of every error response: RFC 9457 problem details
// with promptq's extension members code, field and location.
type Problem struct {
	// Type is ProblemTypePrefix + Code.
	Type string `json:"type"`
	// Title is a short summary of the kind of problem, the same for every
	// occurrence of a code.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty"`
	// Code is the stable, machine-readable kind of problem.
	Code string `json:"code"`
	// Field names the offending request field, when there is one.
	Field string `json:"field,omitempty"`
	// Location is where the existing task can be read (duplicate_task).
	Location string `json:"location,omitempty"`
}

// titles gives each code its fixed title.
var titles = map[string]string{
	CodeUnauthorized:     "Missing or wrong bearer token",
	CodeHostNotAllowed:   "Host not allowed",
	CodeOriginNotAllowed: "Cross-origin request refused",
	CodeReadOnly:         "The server is read-only",
	CodeNotFound:         "No such endpoint",
	CodeAccountNotFound:  "Unknown account",
	CodeTenantNotFound:   "Unknown tenant",
	CodeTaskNotFound:     "Unknown task",
	CodeMethodNotAllowed: "Method not allowed",
	CodeDuplicateTask:    "A task with this id exists",
	CodeAmbiguousTask:    "Several queues hold this task id",
	CodeNoAccount:        "No account known yet",
	CodeBodyTooLarge:     "Request body too large",
	CodeTaskTooLarge:     "Task too large",
	CodeUnsupportedMedia: "Content-Type must be application/json",
	CodeTooManyRequests:  "Too many requests in flight",
	CodeInvalidJSON:      "Invalid JSON body",
	CodeInvalidField:     "Invalid field",
	CodeAccountRequired:  "Name the account",
	CodeUnavailable:      "Service unavailable",
	CodeEnqueueFailed:    "Enqueue failed",
	CodeInternal:         "Internal error",
}

// newProblem returns the problem for code with status and detail.
func newProblem(status int, code, detail string) *Problem {
	return &Problem{Type: ProblemTypePrefix + code, Title: titles[code], Status: status, Detail: detail, Code: code}
}

// withField sets the problem's field.
func (p *Problem) withField(f string) *Problem { p.Field = f; return p }

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	if p.Location != "" {
		w.Header().Set("Location", p.Location)
	}
	writeBody(w, problemContentTypeUTF8, p.Status, p)
}

// fail writes the problem for code with status, detail and field ("" for none).
func fail(w http.ResponseWriter, status int, code, detail, field string) {
	writeProblem(w, newProblem(status, code, detail).withField(field))
}
