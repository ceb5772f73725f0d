package tasks

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePayload(t *testing.T) {
	cases := []struct {
		name, line string
		field      string // expected FieldError.Field; "" = valid
	}{
		{"text input", `{"model":"m","input":"hi"}`, ""},
		{"messages", `{"model":"m","input":[{"role":"system","content":"x"},{"role":"user","content":"hi"}]}`, ""},
		{"content parts", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}`, ""},
		{"all fields", `{"id":"a-1","model":"m","input":"hi","instructions":"be brief","max_output_tokens":256,"stream":true,"endpoint":"chat_completions","metadata":{"k":1},"queue":"low"}`, ""},
		{"missing model", `{"input":"hi"}`, "model"},
		{"blank model", `{"model":"  ","input":"hi"}`, "model"},
		{"missing input", `{"model":"m"}`, "input"},
		{"empty input", `{"model":"m","input":"   "}`, "input"},
		{"empty messages", `{"model":"m","input":[]}`, "input"},
		{"input number", `{"model":"m","input":5}`, "input"},
		{"bad role", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, "input[0].role"},
		{"negative max", `{"model":"m","input":"hi","max_output_tokens":-1}`, "max_output_tokens"},
		{"huge max", `{"model":"m","input":"hi","max_output_tokens":1000001}`, "max_output_tokens"},
		{"zero max", `{"model":"m","input":"hi","max_output_tokens":0}`, "max_output_tokens"},
		{"null max", `{"model":"m","input":"hi","max_output_tokens":null}`, ""},
		{"max at limit", `{"model":"m","input":"hi","max_output_tokens":1000000}`, ""},
		{"max of one", `{"model":"m","input":"hi","max_output_tokens":1}`, ""},
		{"max as string", `{"model":"m","input":"hi","max_output_tokens":"256"}`, "payload"},
		{"bad endpoint", `{"model":"m","input":"hi","endpoint":"completions"}`, "endpoint"},
		{"bad queue", `{"model":"m","input":"hi","queue":"a b"}`, "queue"},
		{"id with space", `{"id":"a b","model":"m","input":"hi"}`, "id"},
		{"unknown field", `{"model":"m","input":"hi","temprature":1}`, "payload"},
		{"not json", `{"model":`, "payload"},
		{"array", `[1,2]`, "payload"},
		{"trailing", `{"model":"m","input":"hi"} {}`, "payload"},
		{"tenant", `{"model":"m","input":"hi","tenant":"team-a"}`, ""},
		{"bad tenant", `{"model":"m","input":"hi","tenant":"team {a}"}`, "tenant"},
		{"invalid utf8", "{\"model\":\"m\",\"input\":\"\xff\"}", "payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePayload([]byte(tc.line), 0)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if p.Model == "" {
					t.Fatal("model lost")
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want FieldError on %q, got %v", tc.field, err)
			}
			if fe.Field != tc.field {
				t.Fatalf("field = %q (%v), want %q", fe.Field, fe, tc.field)
			}
		})
	}
}

func TestParsePayloadSizeLimit(t *testing.T) {
	line := `{"model":"m","input":"` + strings.Repeat("a", 2000) + `"}`
	if _, err := ParsePayload([]byte(line), 1000); err == nil || !strings.Contains(err.Error(), "limit is 1000") {
		t.Fatalf("want size error, got %v", err)
	}
	if _, err := ParsePayload([]byte(line), 0); err != nil {
		t.Fatalf("default limit: %v", err)
	}
}

func TestInputRoundTrip(t *testing.T) {
	p, err := ParsePayload([]byte(`{"model":"m","input":[{"role":"user","content":"hi"}]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	task, err := NewPromptTask(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePayload(task.Payload(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Input.Messages) != 1 || back.Input.Messages[0].Content != "hi" || back.QueueName() != DefaultQueue {
		t.Fatalf("round trip lost data: %+v", back)
	}
}

// TestParsePayloadNoGoTypeNames: a type error is told in JSON's words, never
// as a Go type ("int64").
func TestParsePayloadNoGoTypeNames(t *testing.T) {
	_, err := ParsePayload([]byte(`{"model":"m","input":"hi","max_output_tokens":"256"}`), 0)
	if err == nil || strings.Contains(err.Error(), "int64") || !strings.Contains(err.Error(), "an integer") {
		t.Fatalf("error = %v, want it to say 'an integer' and never 'int64'", err)
	}
}
