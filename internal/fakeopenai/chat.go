package fakeopenai

import (
	"encoding/json"
	"net/http"
)

// Wire types of the Chat Completions API.

type chatMessage struct {
	Role        string  `json:"role"`
	Content     string  `json:"content"`
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	Logprobs     *struct{}    `json:"logprobs"`
	FinishReason *string      `json:"finish_reason"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
	Refusal *string `json:"refusal,omitempty"`
}

type chatUsage struct {
	PromptTokens            int            `json:"prompt_tokens"`
	CompletionTokens        int            `json:"completion_tokens"`
	TotalTokens             int            `json:"total_tokens"`
	PromptTokensDetails     map[string]int `json:"prompt_tokens_details"`
	CompletionTokensDetails map[string]int `json:"completion_tokens_details"`
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             any          `json:"usage,omitempty"` // *chatUsage, or JSON null in chunks
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

// writeChat answers POST /v1/chat/completions, as JSON or as an SSE stream of
// chat.completion.chunk objects ending with "data: [DONE]". In truncate mode
// it writes part of the answer and flushes; the caller then drops the
// connection.
func (s *Server) writeChat(w http.ResponseWriter, c *call, a *answer) {
	finish := "stop"
	if a.capped {
		finish = "length"
	}
	usage := &chatUsage{
		PromptTokens: a.inputTokens, CompletionTokens: a.outputTokens, TotalTokens: a.inputTokens + a.outputTokens,
		PromptTokensDetails:     map[string]int{"cached_tokens": 0, "audio_tokens": 0},
		CompletionTokensDetails: map[string]int{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
	base := chatCompletion{
		ID: newID("chatcmpl-", 15), Object: "chat.completion", Created: a.created.Unix(), Model: c.model,
		ServiceTier: "default", SystemFingerprint: "fp_fake",
	}
	if !c.stream {
		out := base
		out.Choices = []chatChoice{{Message: &chatMessage{Role: "assistant", Content: a.text, Annotations: []any{}}, FinishReason: &finish}}
		out.Usage = usage
		body, _ := json.Marshal(out)
		writeBody(w, body, a.truncate, a.done)
		return
	}

	sw := newSSE(w)
	chunk := func(choices []chatChoice, u any) chatCompletion {
		ch := base
		ch.Object = "chat.completion.chunk"
		ch.Choices = choices
		if c.includeUsage {
			ch.Usage = u
			if u == nil {
				ch.Usage = json.RawMessage("null")
			}
		}
		return ch
	}
	empty := ""
	sw.event("", chunk([]chatChoice{{Delta: &chatDelta{Role: "assistant", Content: &empty}}}, nil))
	deltas := splitDeltas(a.text)
	for i, d := range deltas {
		if a.truncate && i >= (len(deltas)+1)/2 {
			sw.flush()
			return
		}
		sw.event("", chunk([]chatChoice{{Delta: &chatDelta{Content: &d}}}, nil))
	}
	sw.event("", chunk([]chatChoice{{Delta: &chatDelta{}, FinishReason: &finish}}, nil))
	if c.includeUsage {
		sw.event("", chunk([]chatChoice{}, usage))
	}
	a.done()
	sw.raw("[DONE]")
}
