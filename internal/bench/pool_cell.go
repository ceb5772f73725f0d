package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/corpus"
	"github.com/promptq/promptq/internal/fakeopenai"
)

// PoolFamilySet names the PoolFamily scenario set (--scenarios pool-family).
const PoolFamilySet = "pool-family"

// PoolFamily is the "pool-family" scenario set: the pool cells again on
// other providers and prompts of the matrix's family, so a pool's figures
// are not those of one charge formula and one kind of prompt.
var PoolFamily = []string{
	PoolCell2x300 + "+tokenizer+code",
	PoolCell2x300 + "+cjk+tokenizer",
	PoolCell2x300 + "+chat+noisy",
	PoolCell2x300 + "+headers+lat100ms",
	PoolCellFailover + "+tokenizer+chat",
}

// poolWords are the matrix words (cellTokens) a pool cell name may add
// after its base name: they change the provider and the prompts. The
// bound (tpm, rpm), halve and the workers (k1-k64) are the base cell's.
var poolWords = []string{
	"chars", "tokenizer", "noisy", "noisytok", "tok120", "tok80",
	"prose", "code", "cjk", "chat",
	"body", "headers",
	"lat100ms", "lat300ms", "lat2s",
	"b1s", "b60s",
}

// poolBaseCell is a pool cell's provider and prompts before its words: the
// matrix base (chars charge, prose prompts, 300ms ±100ms, 429s with the
// precise wait only in the body).
func poolBaseCell() *Cell {
	return &Cell{Charge: fakeopenai.ChargeChars, Prompts: corpus.Prose, RetryAfter: fakeopenai.RetryAfterSeconds,
		Latency: 300 * time.Millisecond, Jitter: 100 * time.Millisecond}
}

// parsePoolCell parses a pool cell name: a base name of PoolCells, then
// optional words of poolWords joined by "+" ("pool-2x300+tokenizer+code");
// a later word beats an earlier one. ok is false if the base is no pool
// cell; err says which word a pool cell cannot take.
func parsePoolCell(name string) (s Scenario, ok bool, err error) {
	base, words, plus := strings.Cut(name, "+")
	for _, n := range PoolCells {
		ok = ok || n == base
	}
	if !ok {
		return Scenario{}, false, nil
	}
	s = Scenario{Name: name, Workers: PoolWorkers, Bound: BoundTPM, Burst: PoolBurstDefault, Kind: KindPool, Cell: poolBaseCell()}
	if !plus {
		return s, true, nil
	}
	for _, w := range strings.Split(words, "+") {
		if !slices.Contains(poolWords, w) {
			return Scenario{}, true, fmt.Errorf("bench: pool cell %q: %q is not a pool word; want %s and words joined by + (%s)",
				name, w, base, strings.Join(poolWords, ", "))
		}
		cellTokens[w](&s)
	}
	return s, true, nil
}

// base is a pool cell's base name, which decides its shape (accounts,
// events, figures): the name up to its first "+".
func (s Scenario) base() string {
	b, _, _ := strings.Cut(s.Name, "+")
	return b
}
