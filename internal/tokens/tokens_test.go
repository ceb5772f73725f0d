package tokens

import (
	"strings"
	"testing"
)

func TestCountKnownModel(t *testing.T) {
	e := NewEstimator(ModeAuto)
	// "hello world" is 2 tokens in o200k_base and cl100k_base.
	for _, model := range []string{"gpt-4o-mini", "gpt-4-turbo", "openai/gpt-4.1"} {
		n, exact := e.Count(model, "hello world")
		if !exact || n != 2+PerMessage {
			t.Errorf("%s: got %d exact=%v, want %d exact", model, n, exact, 2+PerMessage)
		}
	}
}

func TestCountFallsBackToChars(t *testing.T) {
	e := NewEstimator(ModeAuto)
	n, exact := e.Count("llama-3-70b", "12345678")
	if exact || n != 2+PerMessage {
		t.Fatalf("got %d exact=%v, want chars/4 = %d", n, exact, 2+PerMessage)
	}
	n, exact = NewEstimator(ModeChars).Count("gpt-4o", "12345678", "abcd")
	if exact || n != 2+1+2*PerMessage {
		t.Fatalf("chars mode: got %d exact=%v", n, exact)
	}
	big := strings.Repeat("a", MaxTokenizedBytes+1)
	if n, exact := e.Count("gpt-4o", big); exact || n != Chars(big)+PerMessage {
		t.Fatalf("oversized text: got %d exact=%v", n, exact)
	}
}

func TestTokenizerBeatsCharsOnCode(t *testing.T) {
	// Whitespace-heavy text: characters/4 overestimates badly; the tokenizer does not.
	text := strings.Repeat("    ", 100)
	n, _ := NewEstimator(ModeAuto).Count("gpt-4o", text)
	if n >= Chars(text) {
		t.Fatalf("tokenizer count %d not below chars/4 %d", n, Chars(text))
	}
}

func BenchmarkCount(b *testing.B) {
	e := NewEstimator(ModeAuto)
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 50)
	e.Count("gpt-4o", "warm up")
	b.ReportAllocs()
	for b.Loop() {
		e.Count("gpt-4o", text)
	}
}
