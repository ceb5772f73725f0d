package corpus

import (
	_ "embed"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// Kind is a prompt distribution.
type Kind string

// Kinds of prompt.
const (
	// Prose is English prose of ProseMin-ProseMax characters (log-uniform)
	// with a one-line instruction.
	Prose Kind = "prose"
	// Code is Go, Python and JavaScript source of CodeMin-CodeMax
	// characters (log-uniform) with a one-line instruction.
	Code Kind = "code"
	// CJK is Chinese and Japanese text of CJKMin-CJKMax characters
	// (log-uniform) with a one-line instruction.
	CJK Kind = "cjk"
	// Chat is a message array: a system message, 2-4 user/assistant
	// exchanges of prose and code, and a last user message.
	Chat Kind = "chat"
)

// Length ranges, in characters (Unicode code points).
const (
	ProseMin, ProseMax = 200, 8000
	CodeMin, CodeMax   = 200, 6000
	CJKMin, CJKMax     = 100, 2500
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{Prose, Code, CJK, Chat} }

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	switch k {
	case Prose, Code, CJK, Chat:
		return true
	}
	return false
}

// ParseKind returns the kind named s, or an error naming the allowed ones.
func ParseKind(s string) (Kind, error) {
	if k := Kind(s); k.Valid() {
		return k, nil
	}
	return "", fmt.Errorf("corpus: prompt kind %q: want prose, code, cjk or chat", s)
}

// Message is one chat message.
type Message struct {
	Role    string
	Content string
}

// Prompt is one generated prompt: Instructions plus Text, or Messages
// (Chat, which has no separate instructions).
type Prompt struct {
	Instructions string
	Text         string
	Messages     []Message
}

// Texts returns the instructions (when not empty) and every text, in order.
func (p Prompt) Texts() []string {
	var out []string
	if p.Instructions != "" {
		out = append(out, p.Instructions)
	}
	if p.Messages == nil {
		return append(out, p.Text)
	}
	for _, m := range p.Messages {
		out = append(out, m.Content)
	}
	return out
}

// Chars is the number of characters of every text of p.
func (p Prompt) Chars() int {
	n := 0
	for _, t := range p.Texts() {
		n += utf8.RuneCountInString(t)
	}
	return n
}

var (
	//go:embed seed/prose.txt
	proseSeed string
	//go:embed seed/code.txt
	codeSeed string
	//go:embed seed/cjk.txt
	cjkSeed string
)

// Seed passages, split once. They are never modified.
var (
	proseParas = split(proseSeed, "\n\n")
	codeParas  = split(codeSeed, "\n---\n")
	cjkParas   = split(cjkSeed, "\n\n")
)

func split(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var instructions = map[Kind][]string{
	Prose: {"Summarise the following text in two sentences.", "List the three most important facts in this passage.",
		"Rewrite this passage in plain, simple English.", "What is the tone of the following text? Answer in one word, then explain briefly."},
	Code: {"Review this code and point out any bugs.", "Explain what this code does, step by step.",
		"Suggest tests for the following code.", "Rewrite this code to be easier to read without changing its behaviour."},
	CJK: {"Translate the following text into English.", "Summarise the following text in English in two sentences.",
		"What is this text about? Answer in one sentence."},
}

var systemPrompts = []string{
	"You are a helpful assistant for a software company. Answer questions about the product clearly and briefly, ask for clarification when a request is ambiguous, and never make up features that do not exist.",
	"You are a careful technical reviewer. When the user shares code, look for bugs, race conditions and unclear names first, then style. Keep each answer under two hundred words unless asked for more.",
	"You are an editor. Help the user improve their writing: keep their voice, fix grammar and awkward phrasing, and explain each larger change in one short sentence.",
}

// Generate returns prompt i of kind k under seed. The same (k, seed, i)
// always gives the same prompt. An unknown kind panics.
func Generate(k Kind, seed uint64, i int) Prompt {
	h := fnv.New64a()
	h.Write([]byte(k))
	r := rand.New(rand.NewPCG(seed^h.Sum64(), uint64(i)))
	switch k {
	case Prose:
		return Prompt{Instructions: pick(r, instructions[Prose]), Text: sample(r, proseParas, "\n\n", logUniform(r, ProseMin, ProseMax))}
	case Code:
		return Prompt{Instructions: pick(r, instructions[Code]), Text: sample(r, codeParas, "\n\n", logUniform(r, CodeMin, CodeMax))}
	case CJK:
		return Prompt{Instructions: pick(r, instructions[CJK]), Text: sample(r, cjkParas, "\n", logUniform(r, CJKMin, CJKMax))}
	case Chat:
		return Prompt{Messages: chat(r)}
	}
	panic(fmt.Sprintf("corpus: unknown kind %q", k))
}

// chat builds a system message, 2-4 exchanges and a last user message.
func chat(r *rand.Rand) []Message {
	msgs := []Message{{Role: "system", Content: pick(r, systemPrompts)}}
	turns := 2 + r.IntN(3)
	for t := 0; t <= turns; t++ {
		user := sample(r, proseParas, "\n\n", logUniform(r, 100, 1500))
		if r.IntN(3) == 0 {
			user = "Can you look at this?\n\n" + sample(r, codeParas, "\n\n", logUniform(r, 150, 1500))
		}
		msgs = append(msgs, Message{Role: "user", Content: user})
		if t < turns {
			msgs = append(msgs, Message{Role: "assistant", Content: sample(r, proseParas, "\n\n", logUniform(r, 100, 1200))})
		}
	}
	return msgs
}

func pick(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

// logUniform draws a length between lo and hi, log-uniformly (short
// prompts as common per octave as long ones).
func logUniform(r *rand.Rand, lo, hi int) int {
	return int(math.Round(float64(lo) * math.Pow(float64(hi)/float64(lo), r.Float64())))
}

// sample concatenates passages, starting at a random one and going on in a
// random order, until the text has n characters, then cuts it to n
// characters, at a word boundary when one is close.
func sample(r *rand.Rand, paras []string, sep string, n int) string {
	var b strings.Builder
	chars := 0
	order := r.Perm(len(paras))
	for j := 0; chars < n; j++ {
		if j > 0 {
			b.WriteString(sep)
			chars += utf8.RuneCountInString(sep)
		}
		p := paras[order[j%len(order)]]
		b.WriteString(p)
		chars += utf8.RuneCountInString(p)
	}
	return cut(b.String(), n)
}

// cut returns the first n characters of s, shortened to the last space or
// newline within the final 10% when there is one.
func cut(s string, n int) string {
	rs := []rune(s)
	if len(rs) <= n {
		return s
	}
	rs = rs[:n]
	for j := n - 1; j >= n*9/10; j-- {
		if rs[j] == ' ' || rs[j] == '\n' {
			return strings.TrimRight(string(rs[:j]), " \n")
		}
	}
	return string(rs)
}
