package bench

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/corpus"
	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/tasks"
)

// KindPool marks a pool cell (Scenario.Kind): one queue served by a pool of
// accounts (`promptq worker --pool`). Only promptq runs in it: the naive
// baseline (--quota-control=false) has no notion of a pool.
const KindPool = "pool"

// Pool cells, the "pool" scenario set (PoolCells).
const (
	// PoolCell2x300 is two accounts of PoolRPM / PoolTPM serving one queue;
	// it measures the combined limit's utilisation after the warm-up.
	PoolCell2x300 = "pool-2x300"
	// PoolCellFailover is the same two accounts; the first answers
	// insufficient_quota from the moment a third of the batch is answered
	// (and the warm-up is over).
	PoolCellFailover = "pool-failover"
	// PoolCellTiers is the two accounts as tier 1 plus a slow overflow
	// account as tier 2, under a load the primaries absorb (phase A) and
	// then a backlog beyond them (phase B).
	PoolCellTiers = "pool-tiers"
)

// PoolCells is the "pool" scenario set.
var PoolCells = []string{PoolCell2x300, PoolCellFailover, PoolCellTiers}

// Pool cell settings.
const (
	// PoolRPMDefault and PoolTPMDefault are each primary account's limits
	// (the two accounts of 300 RPM / 24k TPM).
	PoolRPMDefault = 300
	PoolTPMDefault = 24_000
	// PoolBurstDefault is the pool cells' burst (bucket capacity as refill
	// time). The matrix base's 1s would hold 400 tokens at 24k TPM, less
	// than one prose prompt (125-2075 tokens), which the fake would refuse
	// as too large forever; OpenAI's 60s would make the failover batch
	// four minutes long (its first third would be all burst). 10s holds
	// about 6 mean prompts and twice the largest.
	PoolBurstDefault = 10 * time.Second
	// PoolDurationDefault is how long a pool cell runs at its limit after
	// the warm-up: pool-2x300's measured window, the failover's tail on the
	// remaining account, pool-tiers' two phases together.
	PoolDurationDefault = 60 * time.Second
	// PoolWorkers is the worker processes of a pool cell (the bar is
	// for three).
	PoolWorkers = 3
	// PoolOverflowRPMShare is the overflow account's RPM as a share of
	// PoolRPM (120 at 300). Its TPM is unlimited: a self-hosted server
	// meters requests, not tokens.
	PoolOverflowRPMShare = 0.4
	// PoolOverflowLatency is the overflow account's latency.
	PoolOverflowLatency = 2 * time.Second
	// PoolPhaseALoad is pool-tiers' phase A offered load as a share of the
	// primaries' combined limit.
	PoolPhaseALoad = 0.5
)

// poolAccount is one account of a pool cell.
type poolAccount struct {
	Name    string        `json:"name"` // short name; the run ID is prefixed to it
	Tier    int           `json:"tier"`
	RPM     int           `json:"rpm"` // 0 = unlimited
	TPM     int           `json:"tpm"` // 0 = unlimited
	Latency time.Duration `json:"latency_ns"`
}

// poolPlan is how a pool cell runs: its accounts, how many tasks and when
// its events happen.
type poolPlan struct {
	accounts []poolAccount
	burst    time.Duration
	// prompts are the cell's corpus kind; cost is their mean charge in
	// tokens under the cell's provider, largest the largest; rate is the
	// tasks per second one primary account allows at that cost.
	prompts    corpus.Kind
	cost, rate float64
	largest    int
	// overflowRate is the overflow account's tasks per second (pool-tiers).
	overflowRate float64
	tasks        int // all tasks of the run
	// failAt is the answers (all accounts) at which the first account runs
	// out of quota (pool-failover).
	failAt int
	// phaseA tasks are enqueued one every phaseAEvery, then phaseB at once
	// when they are all finished (pool-tiers).
	phaseA      int
	phaseAEvery time.Duration
	phaseB      int
	// maxCut bounds how far admittedSpan moves a window's ends: two mean
	// intervals between one primary account's admissions, or the refill
	// the largest prompt waits for, if longer (at 24k TPM a 2,100-token
	// prompt waits 5 s, and a window cut at 3 s counted that wait as idle).
	maxCut time.Duration
	// length is how long the run should take after the first request.
	length time.Duration
}

// poolPlan sizes pool cell s under c, at the mean charge of its prompts
// under its provider (s.Cell), by its base name:
//
//   - pool-2x300: enough tasks (plus 10%) to empty both bursts and run the
//     warm-up and PoolDuration at the combined limit;
//   - pool-failover: two thirds of the batch are PoolDuration of one
//     account's limit; the failover comes at a third of the batch, but not
//     before the warm-up is over (at the defaults the third is answered
//     about 2s in, from the two bursts, so it comes at the warm-up's end);
//   - pool-tiers: phase A offers PoolPhaseALoad of the primaries' limit for
//     half of PoolDuration, phase B is a backlog of what the primaries and
//     the overflow serve together in the other half (plus 10%).
//
// Config.Tasks, when set, replaces the total (pool-tiers: a third in phase A).
func (c Config) poolPlan(s Scenario) poolPlan {
	mean, largest := cellCosts(s.Cell, c.Seed)
	p := poolPlan{burst: s.Burst, prompts: s.Cell.Prompts, cost: mean, largest: largest}
	if c.Burst > 0 {
		p.burst = c.Burst
	}
	p.rate = math.Min(float64(c.PoolRPM)/60, float64(c.PoolTPM)/60/p.cost)
	p.maxCut = time.Duration(2 / p.rate * float64(time.Second))
	if c.PoolTPM > 0 {
		p.maxCut = max(p.maxCut, time.Duration(float64(largest)/(float64(c.PoolTPM)/60)*float64(time.Second)))
	}
	p.accounts = []poolAccount{{Name: "east", Tier: 1, RPM: c.PoolRPM, TPM: c.PoolTPM}, {Name: "west", Tier: 1, RPM: c.PoolRPM, TPM: c.PoolTPM}}
	d, w := c.PoolDuration.Seconds(), c.Warmup.Seconds()
	switch s.base() {
	case PoolCell2x300:
		p.tasks = int(math.Ceil(1.1 * 2 * p.rate * (p.burst.Seconds() + w + d)))
		p.length = c.Warmup + c.PoolDuration
	case PoolCellFailover:
		p.tasks = int(math.Ceil(1.5 * p.rate * d))
		p.length = c.Warmup + c.PoolDuration
	case PoolCellTiers:
		rpm := max(1, int(math.Round(PoolOverflowRPMShare*float64(c.PoolRPM))))
		p.accounts = append(p.accounts, poolAccount{Name: "overflow", Tier: 2, RPM: rpm, Latency: PoolOverflowLatency})
		p.overflowRate = float64(rpm) / 60
		p.phaseA = max(1, int(math.Ceil(PoolPhaseALoad*2*p.rate*d/2)))
		p.phaseB = int(math.Ceil(1.1 * (2*p.rate + p.overflowRate) * d / 2))
		p.length = 2 * c.PoolDuration // phase B may be slower than planned; the timeout is generous
	}
	if c.Tasks > 0 {
		p.tasks = c.Tasks
		if s.base() == PoolCellTiers {
			p.phaseA = max(1, c.Tasks/3)
			p.phaseB = c.Tasks - p.phaseA
		}
	}
	if s.base() == PoolCellTiers {
		p.tasks = p.phaseA + p.phaseB
		p.phaseAEvery = c.PoolDuration / 2 / time.Duration(p.phaseA)
	}
	p.failAt = max(1, p.tasks/3)
	return p
}

// accountName is account a's name in run id: its queue-unique account.
func (p poolPlan) accountName(id string, a poolAccount) string { return id + "-" + a.Name }

// poolFile is the pool file of run id: pool name id, each account served
// by the fake under baseURL/<name>/v1 with its key in the variable
// PROMPTQ_BENCH_KEY_<i>; limits are learned from the provider's headers.
func (p poolPlan) poolFile(id, baseURL string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\naccounts:\n", id)
	for i, a := range p.accounts {
		name := p.accountName(id, a)
		fmt.Fprintf(&b, "  - name: %s\n    base_url: %s/%s/v1\n    api_key_env: %s\n    models: [gpt-4o-mini]\n    tier: %d\n",
			name, baseURL, name, keyEnv(i), a.Tier)
	}
	return []byte(b.String())
}

// keyEnv is the variable holding the key of a pool cell's account i.
func keyEnv(i int) string { return fmt.Sprintf("PROMPTQ_BENCH_KEY_%d", i) }

// keyOf is the key of account name in a bench run (not a secret: the fake
// checks it, so a task sent with another account's key would fail).
func keyOf(name string) string { return "sk-bench-" + name }

// fakeSpecs are the fake's accounts of run id.
func (p poolPlan) fakeSpecs(id string) []fakeopenai.AccountSpec {
	specs := make([]fakeopenai.AccountSpec, len(p.accounts))
	for i, a := range p.accounts {
		name := p.accountName(id, a)
		specs[i] = fakeopenai.AccountSpec{Name: name, RPM: orUnlimited(a.RPM), TPM: orUnlimited(a.TPM), Latency: a.Latency, APIKey: keyOf(name)}
	}
	return specs
}

func orUnlimited(n int) int {
	if n == 0 {
		return fakeopenai.Unlimited
	}
	return n
}

// payloads are tasks from..from+n of run id: corpus prompts of the cell's
// kind (index from+i), IDs "<id>-<phase>-<n>" (phase "" in cells without
// phases).
func (p poolPlan) payloads(id, phase string, from, n int, seed uint64) []*tasks.Payload {
	ps := make([]*tasks.Payload, n)
	for i := range n {
		pl := CellPayload(id, p.prompts, seed, from+i)
		if phase != "" {
			pl.ID = fmt.Sprintf("%s-%s-%06d", id, phase, i)
		}
		ps[i] = pl
	}
	return ps
}

// fits reports whether the largest prompt fits one primary account's
// bucket (TPM × burst): a prompt beyond it is refused as too large forever.
func (p poolPlan) fits(s Scenario) error {
	tpm := p.accounts[0].TPM
	if tpm == 0 {
		return nil
	}
	if held := float64(tpm) / 60 * p.burst.Seconds(); float64(p.largest) > held {
		return fmt.Errorf("bench: pool cell %s: a burst of %s at %d TPM holds %.0f tokens, less than its largest prompt (%d tokens), which the fake would refuse forever; use a longer burst (b60s or --burst)",
			s.Name, p.burst, tpm, held, p.largest)
	}
	return nil
}
