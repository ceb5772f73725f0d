package corpus

import (
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/promptq/promptq/internal/tokens"
)

// TestTokenRatios counts 200 prompts of each kind with the real tokenizer
// (o200k_base, as for gpt-4o-mini, without per-message overhead) against
// OpenAI's characters/4 estimate: prose must cost fewer tokens, CJK far
// more, code about as many or more.
func TestTokenRatios(t *testing.T) {
	est := tokens.NewEstimator(tokens.ModeAuto)
	ratio := map[Kind]float64{}
	for _, k := range Kinds() {
		var toks, quarter int64
		for i := range 200 {
			for _, txt := range Generate(k, 1, i).Texts() {
				n, exact := est.Count("gpt-4o-mini", txt)
				if !exact {
					t.Fatalf("%s: tokenizer not used", k)
				}
				toks += n - tokens.PerMessage
				quarter += tokens.Chars(txt)
			}
		}
		ratio[k] = float64(toks) / float64(quarter)
		t.Logf("%-5s tokens / ceil(chars/4) = %.2f (%d tokens, %d chars/4)", k, ratio[k], toks, quarter)
	}
	if ratio[Prose] >= 0.95 {
		t.Errorf("prose ratio %.2f, want < 0.95 (fewer tokens than characters/4)", ratio[Prose])
	}
	if ratio[Code] < 0.9 {
		t.Errorf("code ratio %.2f, want >= 0.9 (near or above characters/4)", ratio[Code])
	}
	if ratio[CJK] < 2 {
		t.Errorf("CJK ratio %.2f, want >= 2 (far more tokens than characters/4)", ratio[CJK])
	}
	if ratio[Code] <= ratio[Prose] || ratio[CJK] <= ratio[Code] {
		t.Errorf("want prose < code < CJK, got %v", ratio)
	}
}

func TestGenerateDeterministicAndInRange(t *testing.T) {
	ranges := map[Kind][2]int{Prose: {ProseMin, ProseMax}, Code: {CodeMin, CodeMax}, CJK: {CJKMin, CJKMax}}
	for _, k := range Kinds() {
		minLen, maxLen, distinct := 1<<30, 0, map[string]bool{}
		for i := range 300 {
			p := Generate(k, 3, i)
			if !reflect.DeepEqual(p, Generate(k, 3, i)) {
				t.Fatalf("%s %d: not deterministic", k, i)
			}
			if k == Chat {
				if p.Instructions != "" || len(p.Messages) < 6 || p.Messages[0].Role != "system" || p.Messages[len(p.Messages)-1].Role != "user" {
					t.Fatalf("chat %d: %d messages, first %q, last %q", i, len(p.Messages), p.Messages[0].Role, p.Messages[len(p.Messages)-1].Role)
				}
				continue
			}
			n := utf8.RuneCountInString(p.Text)
			minLen, maxLen = min(minLen, n), max(maxLen, n)
			distinct[p.Text] = true
			if r := ranges[k]; n < r[0]*9/10 || n > r[1] || p.Instructions == "" {
				t.Errorf("%s %d: %d characters, want %d-%d, instructions %q", k, i, n, r[0], r[1], p.Instructions)
			}
		}
		if k != Chat && (len(distinct) < 250 || maxLen < ranges[k][1]/2) {
			t.Errorf("%s: %d distinct texts, lengths %d-%d", k, len(distinct), minLen, maxLen)
		}
	}
	if reflect.DeepEqual(Generate(Prose, 1, 0), Generate(Prose, 2, 0)) {
		t.Error("seeds 1 and 2 give the same prompt")
	}
}
