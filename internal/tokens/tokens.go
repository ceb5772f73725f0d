// Package tokens estimates how many input tokens a prompt will be charged,
// for the quota reservation made before a request is sent.
//
// For OpenAI model families it counts with the real tokenizer (tiktoken's
// o200k_base or cl100k_base, whose encodings ship inside the binary: nothing
// is downloaded at run time); for other models, or when the text is very
// large, it falls back to characters/4. The estimate's error against the
// provider's usage.input_tokens is tracked by quota and shown by
// `promptq status`.
//
//	est := tokens.NewEstimator(tokens.ModeAuto)
//	n := est.Count("gpt-4o-mini", "Write a haiku.")
package tokens

import (
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// Modes of an Estimator.
const (
	ModeAuto  = "auto"  // tokenizer for known OpenAI models, characters/4 otherwise
	ModeChars = "chars" // characters/4 always
)

// PerMessage is added for each message's framing (role, separators).
const PerMessage = 4

// MaxTokenizedBytes is the largest text counted with the tokenizer; longer
// texts use characters/4, since tokenizing megabytes costs seconds of CPU.
const MaxTokenizedBytes = 32 << 10

var loaderOnce sync.Once

// Estimator counts tokens. It is safe for concurrent use; encodings load on
// first use (about half a second for o200k_base).
type Estimator struct {
	mode string
	mu   sync.Mutex
	encs map[string]*tiktoken.Tiktoken // encoding name -> encoder; nil = failed to load
}

// NewEstimator returns an estimator in mode (ModeAuto or ModeChars; anything
// else is ModeAuto).
func NewEstimator(mode string) *Estimator {
	return &Estimator{mode: mode, encs: map[string]*tiktoken.Tiktoken{}}
}

// Encoding returns the tiktoken encoding for an OpenAI model, or "".
func Encoding(model string) string {
	m := strings.ToLower(model)
	if i := strings.LastIndex(m, "/"); i >= 0 { // "openai/gpt-4o" style names
		m = m[i+1:]
	}
	switch {
	case strings.HasPrefix(m, "gpt-4o"), strings.HasPrefix(m, "gpt-4.1"), strings.HasPrefix(m, "gpt-4.5"),
		strings.HasPrefix(m, "gpt-5"), strings.HasPrefix(m, "o1"), strings.HasPrefix(m, "o3"),
		strings.HasPrefix(m, "o4"), strings.HasPrefix(m, "chatgpt-"), strings.HasPrefix(m, "gpt-oss"):
		return "o200k_base"
	case strings.HasPrefix(m, "gpt-4"), strings.HasPrefix(m, "gpt-3.5"):
		return "cl100k_base"
	}
	return ""
}

// Chars is the characters/4 estimate of text, rounded up.
func Chars(text string) int64 { return int64(utf8.RuneCountInString(text)+3) / 4 }

// Count estimates the tokens of texts sent to model as messages: the tokens
// of each text plus PerMessage each. exact reports whether the tokenizer was used.
func (e *Estimator) Count(model string, texts ...string) (n int64, exact bool) {
	enc := e.encoder(model)
	exact = enc != nil
	for _, t := range texts {
		if enc != nil && len(t) <= MaxTokenizedBytes {
			n += int64(len(enc.Encode(t, nil, nil)))
		} else {
			n += Chars(t)
			exact = false
		}
		n += PerMessage
	}
	return n, exact
}

// Bases returns the two bases of a request's input estimate for texts sent
// to model as messages (see quota.Input): chars is ceil(characters/4) of all
// texts plus PerMessage each (OpenAI's documented rate-limit estimate), toks
// the tokenizer count plus PerMessage each, or 0 when e has no tokenizer for
// model (or a text is too large to tokenize).
func (e *Estimator) Bases(model string, texts ...string) (chars, toks int64) {
	var runes int64
	for _, t := range texts {
		runes += int64(utf8.RuneCountInString(t))
	}
	framing := int64(PerMessage * len(texts))
	chars = (runes+3)/4 + framing
	if n, exact := e.Count(model, texts...); exact {
		toks = n
	}
	return chars, toks
}

func (e *Estimator) encoder(model string) *tiktoken.Tiktoken {
	if e.mode == ModeChars {
		return nil
	}
	name := Encoding(model)
	if name == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if enc, ok := e.encs[name]; ok {
		return enc
	}
	loaderOnce.Do(func() { tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader()) })
	enc, err := tiktoken.GetEncoding(name)
	if err != nil {
		enc = nil // remembered: fall back to characters/4 for this encoding
	}
	e.encs[name] = enc
	return enc
}
