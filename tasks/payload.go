package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/promptq/promptq/internal/jsonwords"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on a payload, checked by Validate.
const (
	// MaxPayloadBytesDefault is the largest encoded payload accepted (1 MiB).
	MaxPayloadBytesDefault = 1 << 20
	// MaxOutputTokensLimit is the largest max_output_tokens accepted.
	MaxOutputTokensLimit = 1_000_000
	// MaxIDLength is the longest idempotency id accepted.
	MaxIDLength = 200
	// DefaultQueue is used when a payload names no queue.
	DefaultQueue = "default"
)

// Endpoints a task can be sent to.
const (
	EndpointResponses = "responses"        // POST /v1/responses (default)
	EndpointChat      = "chat_completions" // POST /v1/chat/completions
)

// Message is one chat message of a task's input.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Input is a task's prompt: either plain text or a list of messages. In JSON
// it is a string or an array of {role, content}.
type Input struct {
	Text     string
	Messages []Message
}

// MarshalJSON writes the text as a string, messages as an array.
func (in Input) MarshalJSON() ([]byte, error) {
	if in.Messages != nil {
		return json.Marshal(in.Messages)
	}
	return json.Marshal(in.Text)
}

// UnmarshalJSON accepts a string or an array of messages. A message's content
// may be a string or an array of {type, text} parts, whose texts are joined.
func (in *Input) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*in = Input{}
		return nil
	case b[0] == '"':
		in.Messages = nil
		return json.Unmarshal(b, &in.Text)
	case b[0] == '[':
		var raw []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			return &FieldError{"input", "must be a string or an array of {role, content} messages"}
		}
		msgs := make([]Message, 0, len(raw))
		for i, m := range raw {
			text, err := contentText(m.Content)
			if err != nil {
				return &FieldError{fmt.Sprintf("input[%d].content", i), err.Error()}
			}
			msgs = append(msgs, Message{Role: m.Role, Content: text})
		}
		in.Text, in.Messages = "", msgs
		return nil
	default:
		return &FieldError{"input", "must be a string or an array of {role, content} messages"}
	}
}

func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of {type, text} parts")
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		texts = append(texts, p.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// Empty reports whether the input holds no text at all.
func (in Input) Empty() bool {
	if in.Messages == nil {
		return strings.TrimSpace(in.Text) == ""
	}
	for _, m := range in.Messages {
		if strings.TrimSpace(m.Content) != "" {
			return false
		}
	}
	return true
}

// Chars returns the number of characters in the input's texts.
func (in Input) Chars() int {
	if in.Messages == nil {
		return utf8.RuneCountInString(in.Text)
	}
	n := 0
	for _, m := range in.Messages {
		n += utf8.RuneCountInString(m.Content)
	}
	return n
}

// Payload is one prompt task: the JSON of a line of `promptq enqueue`, of a
// POST /v1/tasks body, and of the asynq task's payload.
type Payload struct {
	// ID is an optional idempotency key; it becomes the asynq TaskID, so the
	// same id is enqueued at most once while the task is retained.
	ID string `json:"id,omitempty"`
	// Model is the provider's model name (required).
	Model string `json:"model"`
	// Input is the prompt: text or messages (required, non-empty).
	Input Input `json:"input"`
	// Instructions is the system/developer instruction (optional).
	Instructions string `json:"instructions,omitempty"`
	// MaxOutputTokens caps the response length (optional, 1..MaxOutputTokensLimit).
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// Stream asks the worker to stream the response.
	Stream bool `json:"stream,omitempty"`
	// Endpoint selects "responses" (default) or "chat_completions".
	Endpoint string `json:"endpoint,omitempty"`
	// Metadata is passed to the provider (values as strings) and kept in results.
	Metadata map[string]any `json:"metadata,omitempty"`
	// Queue is the asynq queue (default "default").
	Queue string `json:"queue,omitempty"`
	// Tenant names the producer inside the account (optional; 1-64
	// characters of A-Z a-z 0-9 _ . -). A tenant with a budget (promptq
	// tenant set) is held to it; tenants without one share the account freely.
	Tenant string `json:"tenant,omitempty"`
	// EnqueuedAt is when the task was enqueued: NewPromptTask sets it (a
	// value given by the producer is replaced), and the worker measures the
	// time from enqueue to start from it.
	EnqueuedAt *time.Time `json:"enqueued_at,omitempty"`
}

// FieldError says which field of a payload is wrong and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

var (
	queueRE  = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,64}$`)
	idRE     = regexp.MustCompile(`^[\x21-\x7e]+$`)
	tenantRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)
)

// Validate checks a payload the way enqueue and the worker both do. The
// error is a *FieldError naming the field and the allowed range.
func (p *Payload) Validate() error {
	switch {
	case len(p.ID) > MaxIDLength || (p.ID != "" && !idRE.MatchString(p.ID)):
		return &FieldError{"id", fmt.Sprintf("must be 1-%d printable ASCII characters without spaces", MaxIDLength)}
	case strings.TrimSpace(p.Model) == "":
		return &FieldError{"model", "is required"}
	case len(p.Model) > 256:
		return &FieldError{"model", "must be at most 256 characters"}
	case p.Input.Empty():
		return &FieldError{"input", "is required and must contain text"}
	case p.MaxOutputTokens < 0 || p.MaxOutputTokens > MaxOutputTokensLimit:
		return &FieldError{"max_output_tokens", fmt.Sprintf("must be between 1 and %d", MaxOutputTokensLimit)}
	case p.Endpoint != "" && p.Endpoint != EndpointResponses && p.Endpoint != EndpointChat:
		return &FieldError{"endpoint", fmt.Sprintf("must be %q or %q", EndpointResponses, EndpointChat)}
	case p.Queue != "" && !queueRE.MatchString(p.Queue):
		return &FieldError{"queue", "must be 1-64 characters of A-Z a-z 0-9 _ . : -"}
	case p.Tenant != "" && !tenantRE.MatchString(p.Tenant):
		return &FieldError{"tenant", "must be 1-64 characters of A-Z a-z 0-9 _ . -"}
	}
	for i, m := range p.Input.Messages {
		switch m.Role {
		case "user", "assistant", "system", "developer":
		default:
			return &FieldError{fmt.Sprintf("input[%d].role", i), `must be one of "user", "assistant", "system", "developer"`}
		}
	}
	for _, s := range []struct{ name, v string }{{"model", p.Model}, {"instructions", p.Instructions}, {"input", p.Input.Text}} {
		if !utf8.ValidString(s.v) {
			return &FieldError{s.name, "is not valid UTF-8"}
		}
	}
	for i, m := range p.Input.Messages {
		if !utf8.ValidString(m.Content) {
			return &FieldError{fmt.Sprintf("input[%d].content", i), "is not valid UTF-8"}
		}
	}
	return nil
}

// QueueName returns the payload's queue or DefaultQueue.
func (p *Payload) QueueName() string {
	if p.Queue == "" {
		return DefaultQueue
	}
	return p.Queue
}

// EndpointName returns the payload's endpoint or EndpointResponses.
func (p *Payload) EndpointName() string {
	if p.Endpoint == "" {
		return EndpointResponses
	}
	return p.Endpoint
}

// ParsePayload decodes and validates one payload (a JSONL line or a task's
// bytes). Unknown fields are rejected so that typos do not pass silently.
func ParsePayload(data []byte, maxBytes int) (*Payload, error) {
	if maxBytes <= 0 {
		maxBytes = MaxPayloadBytesDefault
	}
	if len(data) > maxBytes {
		return nil, &FieldError{"payload", fmt.Sprintf("is %d bytes, the limit is %d", len(data), maxBytes)}
	}
	if !utf8.Valid(data) {
		return nil, &FieldError{"payload", "is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Payload
	if err := dec.Decode(&p); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fe
		}
		return nil, &FieldError{"payload", jsonProblem(err)}
	}
	if dec.More() {
		return nil, &FieldError{"payload", "has trailing data after the JSON object"}
	}
	if p.MaxOutputTokens == 0 && explicitZero(data, "max_output_tokens") {
		// 0 in Go means "not set"; written out in JSON it is out of range.
		return nil, &FieldError{"max_output_tokens", fmt.Sprintf("must be between 1 and %d", MaxOutputTokensLimit)}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// explicitZero reports whether the JSON object data sets field to a number
// (which decoded as 0).
func explicitZero(data []byte, field string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return false
	}
	v, ok := m[field]
	return ok && string(bytes.TrimSpace(v)) != "null"
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	var fieldErr *FieldError
	switch {
	case errors.As(err, &fieldErr):
		return fieldErr.Field + " " + fieldErr.Msg
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			found, _, _ := strings.Cut(typeErr.Value, " ") // "number 1.5" -> "number"
			return fmt.Sprintf("field %q must be %s, not a JSON %s", typeErr.Field, jsonwords.Kind(typeErr.Type), found)
		}
		return "must be a JSON object"
	case errors.As(err, &synErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", synErr.Offset, err)
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return "invalid JSON: " + msg
}
