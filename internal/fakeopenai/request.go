package fakeopenai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// call is an API request reduced to what the fake needs, whichever endpoint
// it came from.
type call struct {
	model        string
	instructions string
	texts        []string // text of every message, in order
	lastUser     string   // text of the last user message
	maxOut       int      // requested output cap; 0 = not given
	stream       bool
	includeUsage bool // chat: stream_options.include_usage
	metadata     map[string]string
	taskID       string // the TaskIDHeader value, or ""

	chargeBase float64 // input charge before noise (Config.Charge, scaled)
	usageIn    int     // usage.input_tokens of the answer
}

// outputTokens is how many tokens this call generates.
func (c *call) outputTokens(configured int) int {
	if c.maxOut > 0 && c.maxOut < configured {
		return c.maxOut
	}
	return configured
}

// outputAllowance is what admission charges for output: the request's
// cap, or DefaultMaxOutputTokens.
func (c *call) outputAllowance() int {
	if c.maxOut <= 0 {
		return DefaultMaxOutputTokens
	}
	return c.maxOut
}

// padWords fill generated text up to the output token count.
var padWords = [...]string{"lorem", "ipsum", "dolor", "sit", "amet"}

// OutputText is the text the fake answers for a last user message when it
// generates n tokens: "echo: " + the first 40 characters of the message,
// then filler words until the text has n space-separated words.
// Tests may use it to predict answers.
func OutputText(lastUser string, n int) string {
	if r := []rune(lastUser); len(r) > 40 {
		lastUser = string(r[:40])
	}
	text := strings.TrimSpace("echo: " + lastUser)
	var b strings.Builder
	b.WriteString(text)
	for i := 0; i < n-len(strings.Fields(text)); i++ {
		b.WriteByte(' ')
		b.WriteString(padWords[i%len(padWords)])
	}
	return b.String()
}

// splitDeltas cuts text into stream deltas (one word each, keeping the
// separators) whose concatenation is exactly text.
func splitDeltas(text string) []string {
	parts := strings.SplitAfter(text, " ")
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// apiError is an OpenAI error body's inner object.
type apiError struct {
	status  int
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func strp(s string) *string { return &s }

func invalidRequest(status int, msg, param, code string) *apiError {
	e := &apiError{status: status, Message: msg, Type: "invalid_request_error"}
	if param != "" {
		e.Param = strp(param)
	}
	if code != "" {
		e.Code = strp(code)
	}
	return e
}

const badJSONMessage = "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"

// parseResponses decodes a POST /v1/responses body.
func parseResponses(body []byte) (*call, *apiError) {
	var req struct {
		Model           string            `json:"model"`
		Input           json.RawMessage   `json:"input"`
		Instructions    *string           `json:"instructions"`
		MaxOutputTokens *int              `json:"max_output_tokens"`
		Stream          bool              `json:"stream"`
		Metadata        map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalidRequest(400, badJSONMessage, "", "")
	}
	if req.Model == "" {
		return nil, invalidRequest(400, "Missing required parameter: 'model'.", "model", "missing_required_parameter")
	}
	in := bytes.TrimSpace(req.Input)
	if len(in) == 0 || bytes.Equal(in, []byte("null")) {
		return nil, invalidRequest(400, "Missing required parameter: 'input'.", "input", "missing_required_parameter")
	}
	c := &call{model: req.Model, stream: req.Stream, metadata: req.Metadata}
	if req.Instructions != nil {
		c.instructions = *req.Instructions
	}
	if req.MaxOutputTokens != nil {
		if *req.MaxOutputTokens < MinResponsesMaxOutputTokens {
			return nil, invalidRequest(400, fmt.Sprintf("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= %d, but got %d instead.", MinResponsesMaxOutputTokens, *req.MaxOutputTokens), "max_output_tokens", "integer_below_min_value")
		}
		c.maxOut = *req.MaxOutputTokens
	}
	var s string
	if err := json.Unmarshal(in, &s); err == nil {
		c.texts, c.lastUser = []string{s}, s
		return c, nil
	}
	var items []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(in, &items); err != nil {
		return nil, invalidRequest(400, "Invalid type for 'input': expected a string or an array of input items.", "input", "invalid_type")
	}
	if len(items) == 0 {
		return nil, invalidRequest(400, "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.", "input", "empty_array")
	}
	for i, it := range items {
		text, ok := contentText(it.Content, "input_text")
		if !ok {
			return nil, invalidRequest(400, fmt.Sprintf("Invalid value for 'input[%d].content'.", i), fmt.Sprintf("input[%d].content", i), "invalid_value")
		}
		c.texts = append(c.texts, text)
		if it.Role == "user" {
			c.lastUser = text
		}
	}
	return c, nil
}

// parseChat decodes a POST /v1/chat/completions body.
func parseChat(body []byte) (*call, *apiError) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		MaxTokens           *int `json:"max_tokens"`
		MaxCompletionTokens *int `json:"max_completion_tokens"`
		Stream              bool `json:"stream"`
		StreamOptions       *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, invalidRequest(400, badJSONMessage, "", "")
	}
	if req.Model == "" {
		return nil, invalidRequest(400, "you must provide a model parameter", "", "")
	}
	if req.Messages == nil {
		return nil, invalidRequest(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
	}
	if len(req.Messages) == 0 {
		return nil, invalidRequest(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array")
	}
	c := &call{model: req.Model, stream: req.Stream, metadata: req.Metadata}
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if p.v == nil {
			continue
		}
		if *p.v < 1 {
			return nil, invalidRequest(400, fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", p.name, *p.v), p.name, "integer_below_min_value")
		}
		c.maxOut = *p.v // max_completion_tokens, checked last, wins
	}
	if req.StreamOptions != nil {
		if !req.Stream {
			return nil, invalidRequest(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value")
		}
		c.includeUsage = req.StreamOptions.IncludeUsage
	}
	for i, m := range req.Messages {
		text, ok := contentText(m.Content, "text")
		if !ok {
			return nil, invalidRequest(400, fmt.Sprintf("Invalid value for 'messages[%d].content'.", i), fmt.Sprintf("messages[%d].content", i), "invalid_value")
		}
		c.texts = append(c.texts, text)
		if m.Role == "user" {
			c.lastUser = text
		}
	}
	return c, nil
}

// contentText extracts the text of a message content: a string, or an array
// of parts whose text parts (partType, or output_text in replayed assistant
// turns) are concatenated. Non-text parts (images, files) contribute nothing.
// A missing or null content is empty text (assistant tool-call turns).
func contentText(raw json.RawMessage, partType string) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == partType || p.Type == "output_text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), true
}
