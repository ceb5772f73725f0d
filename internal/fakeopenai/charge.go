package fakeopenai

import (
	"math"
	"unicode/utf8"

	"github.com/promptq/promptq/internal/tokens"
)

// Charge is how the fake's rate limiter charges a request's input against
// the TPM bucket at admission (Config.Charge). Every model adds the
// request's max output tokens (DefaultMaxOutputTokens when it gives none).
//
// "Characters" means the characters (Unicode code points) of the
// instructions plus the text of every message (content strings and text
// parts), without role names, JSON syntax or per-message framing.
type Charge string

// Charge models.
const (
	// ChargeSimple charges ceil(characters/4) + 4 per message (the
	// instructions are not a message here) and reports the same figure as
	// usage.input_tokens. It is the fake's original model and the default,
	// which the demo and the multi-process tests rely on.
	ChargeSimple Charge = "simple"
	// ChargeChars charges ceil(characters/4), OpenAI's documented
	// estimate; usage.input_tokens is the tokenizer count.
	ChargeChars Charge = "chars"
	// ChargeTokenizer charges the exact tiktoken count (o200k_base for
	// gpt-4o*, the model's encoding for other OpenAI models, o200k_base for
	// unknown models) plus tokens.PerMessage per text; usage.input_tokens is
	// the same count.
	ChargeTokenizer Charge = "tokenizer"
)

// Valid reports whether c is one of the known charge models.
func (c Charge) Valid() bool {
	switch c {
	case ChargeSimple, ChargeChars, ChargeTokenizer:
		return true
	}
	return false
}

// Charges is what one request costs: the input part of the TPM charge at
// admission (before the max output tokens are added, after scale and
// noise) and the input tokens its usage reports.
type Charges struct {
	Input int `json:"input"`
	Usage int `json:"usage"`
}

// charger computes a request's charge under one Config. It is safe for
// concurrent use (the tokenizer is); the noise factor is drawn by the
// caller, under the server's lock.
type charger struct {
	model Charge
	scale float64
	est   *tokens.Estimator
}

func newCharger(cfg Config) *charger {
	return &charger{model: cfg.Charge, scale: cfg.ChargeScale, est: tokens.NewEstimator(tokens.ModeAuto)}
}

// base returns the input charge before noise (scale applied, not rounded)
// and the usage input tokens of a request sending model the instructions
// and the message texts.
func (ch *charger) base(model, instructions string, messages []string) (input float64, usage int) {
	texts := messages
	if instructions != "" {
		texts = append([]string{instructions}, messages...)
	}
	chars := 0
	for _, t := range texts {
		chars += utf8.RuneCountInString(t)
	}
	switch ch.model {
	case ChargeChars:
		return float64((chars+3)/4) * ch.scale, ch.tokenize(model, texts)
	case ChargeTokenizer:
		n := ch.tokenize(model, texts)
		return float64(n) * ch.scale, n
	default: // ChargeSimple
		n := (chars+3)/4 + tokens.PerMessage*len(messages)
		return float64(n) * ch.scale, n
	}
}

// tokenize is the tiktoken count of texts plus tokens.PerMessage each.
// Texts over tokens.MaxTokenizedBytes fall back to characters/4, as promptq's
// own estimator does.
func (ch *charger) tokenize(model string, texts []string) int {
	if tokens.Encoding(model) == "" {
		model = "gpt-4o"
	}
	n, _ := ch.est.Count(model, texts...)
	return int(n)
}

// Charger computes what requests cost under one Config, without noise:
// the bench uses it to size its loads. Create it with NewCharger; it is
// safe for concurrent use.
type Charger struct{ ch *charger }

// NewCharger returns a Charger for cfg (completed with WithDefaults).
func NewCharger(cfg Config) *Charger { return &Charger{newCharger(cfg.WithDefaults())} }

// Of returns the input part of the TPM charge (rounded up, before the max
// output tokens are added) and the usage input tokens of a request
// sending model the instructions and the message texts.
func (c *Charger) Of(model, instructions string, messages []string) Charges {
	in, usage := c.ch.base(model, instructions, messages)
	return Charges{Input: int(math.Ceil(in - 1e-9)), Usage: usage}
}

// noisy applies a uniform ±noise factor u (in [-1, 1]) to a base charge and
// rounds it up; it never goes below 0.
func noisy(base, noise, u float64) int {
	return max(0, int(math.Ceil(base*(1+noise*u)-1e-9)))
}
