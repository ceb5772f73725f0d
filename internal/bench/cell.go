package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/corpus"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

// CellPrefix starts the name of a matrix cell ("m-base", "m-cjk+tokenizer").
const CellPrefix = "m-"

// MatrixCells is the "matrix" scenario set: the base cell, each axis varied
// on its own against the base, then a few combined hard cells.
var MatrixCells = []string{
	"m-base",
	// charge model
	"m-tokenizer", "m-noisy", "m-tok120", "m-tok80",
	// prompts
	"m-code", "m-cjk", "m-chat",
	// provider behaviour
	"m-headers", "m-b60s", "m-rpm", "m-lat100ms", "m-lat2s", "m-halve",
	// workers
	"m-k1", "m-k8",
	// combined hard cells
	"m-cjk+tokenizer", "m-code+noisy", "m-chat+b60s", "m-k8+chat+noisytok+lat100ms",
}

// Cell is what a matrix cell changes on top of the scenario's bound, burst
// and workers: how the fake provider charges and answers, and the prompts.
// The base cell ("m-base") is: chars charge, prose prompts, TPM-bound, 1s
// burst, 300ms ±100ms latency, 429s with the precise wait only in the body,
// K=3.
type Cell struct {
	Charge      fakeopenai.Charge     `json:"charge"`
	ChargeScale float64               `json:"charge_scale,omitempty"`
	ChargeNoise float64               `json:"charge_noise,omitempty"`
	Prompts     corpus.Kind           `json:"prompts"`
	RetryAfter  fakeopenai.RetryAfter `json:"retry_after"`
	Latency     time.Duration         `json:"latency_ns"`
	Jitter      time.Duration         `json:"jitter_ns"`
	// Halve halves both limits once the warm-up and 40% of the cell
	// duration have passed.
	Halve bool `json:"halve,omitempty"`
}

// cellTokens are the words of a cell name and what each changes.
var cellTokens = map[string]func(*Scenario){
	"chars": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeChars, 0, 0
	},
	"tokenizer": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeTokenizer, 0, 0
	},
	"noisy": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeChars, 0, 0.1
	},
	"noisytok": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeTokenizer, 0, 0.1
	},
	"tok120": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeTokenizer, 1.2, 0
	},
	"tok80": func(s *Scenario) {
		s.Cell.Charge, s.Cell.ChargeScale, s.Cell.ChargeNoise = fakeopenai.ChargeTokenizer, 0.8, 0
	},
	"prose":    func(s *Scenario) { s.Cell.Prompts = corpus.Prose },
	"code":     func(s *Scenario) { s.Cell.Prompts = corpus.Code },
	"cjk":      func(s *Scenario) { s.Cell.Prompts = corpus.CJK },
	"chat":     func(s *Scenario) { s.Cell.Prompts = corpus.Chat },
	"body":     func(s *Scenario) { s.Cell.RetryAfter = fakeopenai.RetryAfterSeconds },
	"headers":  func(s *Scenario) { s.Cell.RetryAfter = fakeopenai.RetryAfterBoth },
	"b1s":      func(s *Scenario) { s.Burst = time.Second },
	"b60s":     func(s *Scenario) { s.Burst = time.Minute },
	"tpm":      func(s *Scenario) { s.Bound = BoundTPM },
	"rpm":      func(s *Scenario) { s.Bound = BoundRPM },
	"lat100ms": func(s *Scenario) { s.Cell.Latency, s.Cell.Jitter = 100*time.Millisecond, 30*time.Millisecond },
	"lat300ms": func(s *Scenario) { s.Cell.Latency, s.Cell.Jitter = 300*time.Millisecond, 100*time.Millisecond },
	"lat2s":    func(s *Scenario) { s.Cell.Latency, s.Cell.Jitter = 2*time.Second, 500*time.Millisecond },
	"halve":    func(s *Scenario) { s.Cell.Halve = true },
}

// parseCell parses a matrix cell name: CellPrefix, then "base" or words
// joined by "+", each changing one axis of the base: a charge model (chars,
// tokenizer, noisy = chars ±10%, noisytok = tokenizer ±10%, tok120 and
// tok80 = tokenizer ×1.2 and ×0.8), prompts (prose, code, cjk, chat), waits
// (body = retry-after in whole seconds with the precise wait only in the
// body, headers = retry-after-ms too), burst (b1s, b60s), bound (tpm, rpm),
// latency (lat100ms ±30ms, lat300ms ±100ms, lat2s ±500ms), halve (limits
// halve mid-run) and workers (k1-k64). A later word beats an earlier one.
func parseCell(name string) (Scenario, error) {
	bad := func(why string) error {
		return fmt.Errorf("bench: matrix cell %q: %s; want m-base or m- and words joined by + (chars, tokenizer, noisy, noisytok, tok120, tok80, prose, code, cjk, chat, body, headers, b1s, b60s, tpm, rpm, lat100ms, lat300ms, lat2s, halve, k1-k64)", name, why)
	}
	s := Scenario{Name: name, Workers: 3, Bound: BoundTPM, Burst: time.Second, Cell: &Cell{
		Charge: fakeopenai.ChargeChars, Prompts: corpus.Prose, RetryAfter: fakeopenai.RetryAfterSeconds,
		Latency: 300 * time.Millisecond, Jitter: 100 * time.Millisecond,
	}}
	rest := strings.TrimPrefix(name, CellPrefix)
	if rest == "base" {
		return s, nil
	}
	if rest == "" {
		return Scenario{}, bad("no words")
	}
	for _, w := range strings.Split(rest, "+") {
		if f, ok := cellTokens[w]; ok {
			f(&s)
			continue
		}
		k, err := strconv.Atoi(strings.TrimPrefix(w, "k"))
		if !strings.HasPrefix(w, "k") || err != nil || k < 1 || k > 64 {
			return Scenario{}, bad(fmt.Sprintf("unknown word %q", w))
		}
		s.Workers = k
	}
	return s, nil
}

// fakeConfig is the fake provider of cell c under limits l.
func (c *Cell) fakeConfig(l limits, seed uint64) fakeopenai.Config {
	return fakeopenai.Config{RPM: l.rpm, TPM: l.tpm, Burst: l.burst, Latency: c.Latency, Jitter: c.Jitter,
		Charge: c.Charge, ChargeScale: c.ChargeScale, ChargeNoise: c.ChargeNoise, Seed: seed, RetryAfter: c.RetryAfter}
}

// CellPayload is prompt i of a matrix cell's run: corpus prompt i of the
// cell's kind under seed, sent to gpt-4o-mini with MaxOutputTokens; chat
// prompts go to the Chat Completions endpoint as message arrays.
func CellPayload(run string, kind corpus.Kind, seed uint64, i int) *tasks.Payload {
	pr := corpus.Generate(kind, seed, i)
	p := &tasks.Payload{ID: fmt.Sprintf("%s-%06d", run, i), Model: "gpt-4o-mini", Instructions: pr.Instructions,
		MaxOutputTokens: MaxOutputTokens, Queue: run}
	if pr.Messages == nil {
		p.Input.Text = pr.Text
		return p
	}
	p.Endpoint = tasks.EndpointChat
	for _, m := range pr.Messages {
		p.Input.Messages = append(p.Input.Messages, tasks.Message{Role: m.Role, Content: m.Content})
	}
	return p
}

// costSample is how many prompts sizing averages the charge over.
const costSample = 200

// meanCellCost is the mean TPM charge of a cell's prompts (without noise):
// the fake's input charge under the cell's model plus MaxOutputTokens.
func meanCellCost(c *Cell, seed uint64) float64 {
	mean, _ := cellCosts(c, seed)
	return mean
}

// cellCosts is the mean and the largest charge of c's prompts (see
// meanCellCost).
func cellCosts(c *Cell, seed uint64) (mean float64, largest int) {
	ch := fakeopenai.NewCharger(c.fakeConfig(limits{}, seed))
	total := 0
	for i := range costSample {
		p := corpus.Generate(c.Prompts, seed, i)
		var msgs []string
		if p.Messages == nil {
			msgs = []string{p.Text}
		}
		for _, m := range p.Messages {
			msgs = append(msgs, m.Content)
		}
		cost := ch.Of("gpt-4o-mini", p.Instructions, msgs).Input + MaxOutputTokens
		total += cost
		largest = max(largest, cost)
	}
	return float64(total) / costSample, largest
}

// cellLimits sizes a matrix cell: the binding limit allows c.MatrixRate
// tasks per second at the prompts' mean charge, the other is 4x looser;
// enough tasks (plus 10%) to empty the burst, then run the warm-up and the
// cell duration at the limit (at half the rate after a halving).
func (c Config) cellLimits(s Scenario) limits {
	l := limits{burst: s.Burst, rate: c.MatrixRate}
	if c.Burst > 0 {
		l.burst = c.Burst
	}
	cost := meanCellCost(s.Cell, c.Seed)
	perMin := c.MatrixRate * 60
	if s.Bound == BoundRPM {
		l.rpm, l.tpm = int(math.Round(perMin)), int(math.Round(4*perMin*cost))
	} else {
		l.rpm, l.tpm = int(math.Round(4*perMin)), int(math.Round(perMin*cost))
	}
	atLimit := c.Warmup.Seconds() + c.CellDuration.Seconds()
	if s.Cell.Halve {
		atLimit = c.Warmup.Seconds() + HalveAt*c.CellDuration.Seconds() + (1-HalveAt)*c.CellDuration.Seconds()/2
	}
	l.tasks = int(math.Ceil(1.1 * (l.rate*l.burst.Seconds() + l.rate*atLimit)))
	if c.Tasks > 0 {
		l.tasks = c.Tasks
	}
	return l
}

// HalveAt is when a halving cell halves its limits: after the warm-up and
// this share of the cell duration.
const HalveAt = 0.4

// cellConcurrency is each worker's concurrency in a cell: the configured
// one, raised so the K workers together can keep three times the binding
// rate in flight at the slowest latency (the provider, not the workers,
// must be what limits).
func (c Config) cellConcurrency(s Scenario) int {
	need := 3 * c.MatrixRate * (s.Cell.Latency + s.Cell.Jitter).Seconds() / float64(s.Workers)
	return max(c.Concurrency, int(math.Ceil(need)))
}
