package fakeopenai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Wire types of the Responses API, in OpenAI's field order.

type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Background         bool              `json:"background"`
	Error              *struct{}         `json:"error"`
	IncompleteDetails  *struct{}         `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []outputItem      `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          map[string]any    `json:"reasoning"`
	ServiceTier        string            `json:"service_tier"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               map[string]any    `json:"text"`
	ToolChoice         string            `json:"tool_choice"`
	Tools              []any             `json:"tools"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *responseUsage    `json:"usage"`
	User               *string           `json:"user"`
	Metadata           map[string]string `json:"metadata"`
}

type outputItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputPart `json:"content"`
	Role    string       `json:"role"`
}

type outputPart struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
	Text        string `json:"text"`
}

type responseUsage struct {
	InputTokens         int            `json:"input_tokens"`
	InputTokensDetails  map[string]int `json:"input_tokens_details"`
	OutputTokens        int            `json:"output_tokens"`
	OutputTokensDetails map[string]int `json:"output_tokens_details"`
	TotalTokens         int            `json:"total_tokens"`
}

// writeResponses answers POST /v1/responses, as JSON or as an SSE stream.
// In truncate mode it writes part of the answer and flushes; the caller then
// drops the connection.
func (s *Server) writeResponses(w http.ResponseWriter, c *call, a *answer) {
	msgID := newID("msg_", 24)
	resp := responseObject{
		ID: newID("resp_", 24), Object: "response", CreatedAt: a.created.Unix(),
		Status: "in_progress", Model: c.model, Output: []outputItem{},
		ParallelToolCalls: true, Reasoning: map[string]any{"effort": nil, "summary": nil},
		ServiceTier: "default", Store: true, Temperature: 1, TopP: 1,
		Text:       map[string]any{"format": map[string]string{"type": "text"}, "verbosity": "medium"},
		ToolChoice: "auto", Tools: []any{}, Truncation: "disabled", Metadata: c.metadata,
	}
	if resp.Metadata == nil {
		resp.Metadata = map[string]string{}
	}
	if c.instructions != "" {
		resp.Instructions = &c.instructions
	}
	if c.maxOut > 0 {
		resp.MaxOutputTokens = &c.maxOut
	}
	part := outputPart{Type: "output_text", Annotations: []any{}, Logprobs: []any{}, Text: a.text}
	done := resp
	done.Status = "completed"
	done.Output = []outputItem{{ID: msgID, Type: "message", Status: "completed", Content: []outputPart{part}, Role: "assistant"}}
	done.Usage = &responseUsage{
		InputTokens: a.inputTokens, InputTokensDetails: map[string]int{"cached_tokens": 0},
		OutputTokens: a.outputTokens, OutputTokensDetails: map[string]int{"reasoning_tokens": 0},
		TotalTokens: a.inputTokens + a.outputTokens,
	}

	if !c.stream {
		body, _ := json.Marshal(done)
		writeBody(w, body, a.truncate, a.done)
		return
	}

	sw := newSSE(w)
	seq := 0
	emit := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		sw.event(typ, fields)
	}
	emit("response.created", map[string]any{"response": resp})
	emit("response.in_progress", map[string]any{"response": resp})
	emit("response.output_item.added", map[string]any{"output_index": 0,
		"item": outputItem{ID: msgID, Type: "message", Status: "in_progress", Content: []outputPart{}, Role: "assistant"}})
	emptyPart := part
	emptyPart.Text = ""
	loc := func(m map[string]any) map[string]any {
		m["item_id"], m["output_index"], m["content_index"] = msgID, 0, 0
		return m
	}
	emit("response.content_part.added", loc(map[string]any{"part": emptyPart}))
	deltas := splitDeltas(a.text)
	for i, d := range deltas {
		if a.truncate && i >= (len(deltas)+1)/2 {
			sw.flush()
			return
		}
		emit("response.output_text.delta", loc(map[string]any{"delta": d, "logprobs": []any{}}))
	}
	emit("response.output_text.done", loc(map[string]any{"text": a.text, "logprobs": []any{}}))
	emit("response.content_part.done", loc(map[string]any{"part": part}))
	emit("response.output_item.done", map[string]any{"output_index": 0, "item": done.Output[0]})
	if a.truncate {
		sw.flush()
		return
	}
	a.done()
	emit("response.completed", map[string]any{"response": done})
	sw.flush()
}

// writeBody writes a JSON answer; with truncate only its first half is sent
// (Content-Length still announces the whole), so the client sees a cut body.
func writeBody(w http.ResponseWriter, body []byte, truncate bool, done func()) {
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if truncate {
		body = body[:len(body)/2]
	} else {
		done()
	}
	_, _ = w.Write(body)
	_ = http.NewResponseController(w).Flush()
}

// sse writes a text/event-stream answer, flushing after every event.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	s.flush() // headers go out before the first event
	return s
}

// event writes "event: <typ>" (omitted when typ is empty) and "data: <json>".
func (s *sse) event(typ string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		data = []byte(strconv.Quote(err.Error()))
	}
	if typ != "" {
		_, _ = fmt.Fprintf(s.w, "event: %s\n", typ)
	}
	_, _ = fmt.Fprintf(s.w, "data: %s\n\n", data)
	s.flush()
}

func (s *sse) raw(line string) {
	_, _ = fmt.Fprintf(s.w, "data: %s\n\n", line)
	s.flush()
}

func (s *sse) flush() { _ = s.rc.Flush() }
