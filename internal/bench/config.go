package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/promptq/promptq/tasks"
)

// Defaults applied by Config.WithDefaults.
const (
	// ConcurrencyDefault is each worker process's concurrency.
	ConcurrencyDefault = 8
	// RPMDefault is the request limit of RPM-bound scenarios (20 requests/s).
	RPMDefault = 1200
	// LatencyDefault is the fake provider's latency per admitted request.
	LatencyDefault = 200 * time.Millisecond
	// DurationDefault is how long each scenario should run at the limit; it
	// sizes the task count when Config.Tasks is 0.
	DurationDefault = 10 * time.Second
	// OutageDefault is how long the insufficient_quota outage lasts.
	OutageDefault = 3 * time.Second
	// CostTasksDefault is the task count of the coordination-cost scenario
	// (unlimited provider) when Config.Tasks is 0.
	CostTasksDefault = 400
	// RunTimeoutDefault bounds one run (one mode of one scenario).
	RunTimeoutDefault = 90 * time.Second
	// ScenariosDefault is the quick set.
	ScenariosDefault = "quick"
	// WarmupDefault is how long after the first request the measured
	// window starts.
	WarmupDefault = 5 * time.Second
	// CellDurationDefault is how long a matrix cell runs at its limit after
	// the warm-up (per side).
	CellDurationDefault = 15 * time.Second
	// DrainDefault is how long a matrix run may go on after its cell
	// duration to finish its tasks before it is stopped and the rest
	// counted as unfinished.
	DrainDefault = 20 * time.Second
	// MatrixRateDefault is a matrix cell's binding limit in tasks per second.
	MatrixRateDefault = 8.0
	// SeedDefault seeds the matrix's prompts and the fake's charge noise.
	SeedDefault = 1
	// MaxOutputTokens is set on every bench task; with the prompt it fixes
	// the tokens one task costs (TaskCost).
	MaxOutputTokens = 64
)

// WorkersDefault is the default list of worker-process counts.
var WorkersDefault = []int{1, 3, 8}

// Config configures a bench run. The zero value plus Binary is usable.
type Config struct {
	// Binary is the promptq executable started as `Binary worker ...` (required).
	Binary string
	// RedisURL is the Redis to use; empty (default) starts a throwaway
	// redis-server on a free loopback port. A shared Redis makes the
	// commandstats figures include other clients' commands.
	RedisURL string
	// RedisServer is the redis-server executable (default "redis-server").
	RedisServer string
	// Scenarios is "quick" (default), "full", "matrix", "pool", or a
	// comma-separated list of scenario names (see ParseScenarios).
	Scenarios string
	// Workers lists the worker-process counts the sets draw from (default 1,3,8).
	Workers []int
	// Concurrency is each worker's concurrency (default ConcurrencyDefault).
	Concurrency int
	// Tasks is the number of tasks per run; 0 (default) sizes each scenario
	// to run about Duration at its limit after the burst allowance.
	Tasks int
	// RPM is the request limit of RPM-bound and outage scenarios (default
	// RPMDefault); TPM-bound scenarios allow 4x this.
	RPM int
	// TPM is the token limit of TPM-bound scenarios (default: the same task
	// rate as RPM, i.e. RPM*TaskCost()).
	TPM int
	// Burst, when > 0, replaces every scenario's burst (bucket capacity as
	// refill time). Default 0: each scenario's own (1s or 60s).
	Burst time.Duration
	// Latency is the fake's latency per admitted request (default
	// LatencyDefault); jitter is a quarter of it.
	Latency time.Duration
	// Duration is the target time at the limit per scenario (default DurationDefault).
	Duration time.Duration
	// Outage is the length of the insufficient_quota outage (default OutageDefault).
	Outage time.Duration
	// RunTimeout bounds one run (default RunTimeoutDefault).
	RunTimeout time.Duration
	// Warmup is how long after the first request the measured window of
	// every run starts (default WarmupDefault).
	Warmup time.Duration
	// CellDuration is how long a matrix cell runs at its limit after the
	// warm-up, per side (default CellDurationDefault).
	CellDuration time.Duration
	// Drain bounds how long a matrix run may go on after its cell duration
	// to finish its tasks (default DrainDefault).
	Drain time.Duration
	// MatrixRate is a matrix cell's binding limit in tasks per second
	// (default MatrixRateDefault).
	MatrixRate float64
	// Seed seeds the matrix's prompts and the fake's charge noise (default
	// SeedDefault); both sides of a cell get the same prompts.
	Seed uint64
	// PoolRPM and PoolTPM are each primary account's limits in the pool
	// cells (default PoolRPMDefault and PoolTPMDefault).
	PoolRPM int
	PoolTPM int
	// PoolDuration is how long a pool cell runs at its limit after the
	// warm-up (default PoolDurationDefault); see poolPlan.
	PoolDuration time.Duration
	// Progress, when set, receives one line per run as it starts and ends.
	Progress io.Writer
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.RedisServer = cmp.Or(c.RedisServer, "redis-server")
	c.Scenarios = cmp.Or(c.Scenarios, ScenariosDefault)
	if len(c.Workers) == 0 {
		c.Workers = WorkersDefault
	}
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.RPM = cmp.Or(c.RPM, RPMDefault)
	c.TPM = cmp.Or(c.TPM, c.RPM*TaskCost())
	c.Latency = cmp.Or(c.Latency, LatencyDefault)
	c.Duration = cmp.Or(c.Duration, DurationDefault)
	c.Outage = cmp.Or(c.Outage, OutageDefault)
	c.RunTimeout = cmp.Or(c.RunTimeout, RunTimeoutDefault)
	c.Warmup = cmp.Or(c.Warmup, WarmupDefault)
	c.CellDuration = cmp.Or(c.CellDuration, CellDurationDefault)
	c.Drain = cmp.Or(c.Drain, DrainDefault)
	c.MatrixRate = cmp.Or(c.MatrixRate, MatrixRateDefault)
	c.Seed = cmp.Or(c.Seed, SeedDefault)
	c.PoolRPM = cmp.Or(c.PoolRPM, PoolRPMDefault)
	c.PoolTPM = cmp.Or(c.PoolTPM, PoolTPMDefault)
	c.PoolDuration = cmp.Or(c.PoolDuration, PoolDurationDefault)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.Binary == "":
		return errors.New("bench: Binary (the promptq executable) is required")
	case c.Concurrency < 1 || c.Concurrency > 1000:
		return fmt.Errorf("bench: Concurrency must be 1-1000, got %d", c.Concurrency)
	case c.Tasks < 0 || c.Tasks > 1_000_000:
		return fmt.Errorf("bench: Tasks must be 0-1000000 (0 = sized per scenario), got %d", c.Tasks)
	case c.RPM < 1 || c.TPM < 1:
		return fmt.Errorf("bench: RPM and TPM must be >= 1, got %d and %d", c.RPM, c.TPM)
	case c.Burst < 0 || c.Burst > time.Hour:
		return fmt.Errorf("bench: Burst must be 0-1h, got %s", c.Burst)
	case c.Latency < 0 || c.Latency > time.Minute:
		return fmt.Errorf("bench: Latency must be 0-1m, got %s", c.Latency)
	case c.Duration < time.Second || c.Duration > time.Hour:
		return fmt.Errorf("bench: Duration must be 1s-1h, got %s", c.Duration)
	case c.Outage < time.Second || c.Outage > 10*time.Minute:
		return fmt.Errorf("bench: Outage must be 1s-10m, got %s", c.Outage)
	case c.Warmup < 0 || c.Warmup > 10*time.Minute:
		return fmt.Errorf("bench: Warmup must be 0-10m, got %s", c.Warmup)
	case c.CellDuration < 2*time.Second || c.CellDuration > time.Hour:
		return fmt.Errorf("bench: CellDuration must be 2s-1h, got %s", c.CellDuration)
	case c.Drain < time.Second || c.Drain > time.Hour:
		return fmt.Errorf("bench: Drain must be 1s-1h, got %s", c.Drain)
	case c.MatrixRate < 0.5 || c.MatrixRate > 1000:
		return fmt.Errorf("bench: MatrixRate must be 0.5-1000 tasks/s, got %v", c.MatrixRate)
	case c.PoolRPM < 1 || c.PoolRPM > 1_000_000 || c.PoolTPM < 1 || c.PoolTPM > 1_000_000_000:
		return fmt.Errorf("bench: PoolRPM must be 1-1000000 and PoolTPM 1-1000000000, got %d and %d", c.PoolRPM, c.PoolTPM)
	case c.PoolDuration < 2*time.Second || c.PoolDuration > time.Hour:
		return fmt.Errorf("bench: PoolDuration must be 2s-1h, got %s", c.PoolDuration)
	}
	for _, k := range c.Workers {
		if k < 1 || k > 64 {
			return fmt.Errorf("bench: Workers entries must be 1-64, got %d", k)
		}
	}
	_, err := ParseScenarios(c.Scenarios, c.Workers)
	return err
}

// Bound says which limit a scenario's provider enforces.
type Bound string

// Bounds.
const (
	BoundRPM  Bound = "rpm"  // requests per minute binds
	BoundTPM  Bound = "tpm"  // tokens per minute binds
	BoundNone Bound = "cost" // unlimited provider: measures coordination cost only
)

// Scenario is one load shape, run once per mode.
type Scenario struct {
	Name    string        `json:"name"`
	Workers int           `json:"workers"`
	Bound   Bound         `json:"bound"`
	Burst   time.Duration `json:"burst_ns"`
	// Outage > 0 injects an insufficient_quota outage this long once 30% of
	// the tasks have been answered.
	Outage time.Duration `json:"outage_ns,omitempty"`
	// Kind is "" for the plain promptq-versus-naive comparison, or one of
	// KindAdaptive, KindSlowDown, KindTenants, KindFair (see scenarios.go).
	Kind string `json:"kind,omitempty"`
	// Cell is the provider and prompts of a matrix cell (names starting
	// with CellPrefix) or of a pool cell (Kind KindPool); nil otherwise.
	Cell *Cell `json:"cell,omitempty"`
}

// ParseScenarios expands "quick", "full", "matrix" (MatrixCells), "pool"
// (PoolCells), "pool-family" (PoolFamily) or a comma-separated list of
// names, matrix cells (see parseCell) and pool cells (pool-2x300,
// pool-failover, pool-tiers, each optionally followed by provider words:
// pool-2x300+cjk+tokenizer, see parsePoolCell) among them:
// "rpm-b1s-k3", "tpm-b60s-k8" (bound, burst, workers), "cost-k3" (unlimited
// provider), "outage-k3" (RPM-bound, burst 1s, with an outage), and the
// RPM-bound, burst-1s feature scenarios "adaptive-k3" (adaptive concurrency
// versus plain promptq versus naive), "slowdown-k3" (a 503 slow_down
// injection and the ramp back), "tenants-k3" (a capped tenant next to an
// uncapped one) and "fair-k3" (two tenants' 10:1 backlogs interleaved in one
// queue, with and without weighted fair sharing). "full" has all of them; "quick" none of the feature ones.
// Neither has the matrix or the pool cells.
func ParseScenarios(spec string, workers []int) ([]Scenario, error) {
	if len(workers) == 0 {
		workers = WorkersDefault
	}
	var names []string
	switch spec {
	case "matrix":
		names = MatrixCells
	case KindPool:
		names = PoolCells
	case PoolFamilySet:
		names = PoolFamily
	case "quick":
		lo, mid, hi := workers[0], workers[len(workers)/2], workers[len(workers)-1]
		names = []string{
			fmt.Sprintf("rpm-b1s-k%d", lo), fmt.Sprintf("tpm-b1s-k%d", mid), fmt.Sprintf("rpm-b60s-k%d", hi),
			fmt.Sprintf("cost-k%d", mid), fmt.Sprintf("outage-k%d", mid),
		}
	case "full":
		for _, b := range []string{"rpm", "tpm"} {
			for _, burst := range []string{"1s", "60s"} {
				for _, k := range workers {
					names = append(names, fmt.Sprintf("%s-b%s-k%d", b, burst, k))
				}
			}
		}
		for _, k := range workers {
			names = append(names, fmt.Sprintf("cost-k%d", k))
		}
		mid := workers[len(workers)/2]
		names = append(names, fmt.Sprintf("outage-k%d", mid),
			fmt.Sprintf("adaptive-k%d", mid), fmt.Sprintf("slowdown-k%d", mid), fmt.Sprintf("tenants-k%d", mid), fmt.Sprintf("fair-k%d", mid))
	default:
		names = strings.Split(spec, ",")
	}
	out := make([]Scenario, 0, len(names))
	for _, n := range names {
		s, err := parseScenario(strings.TrimSpace(n))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseScenario(name string) (Scenario, error) {
	if strings.HasPrefix(name, CellPrefix) {
		return parseCell(name)
	}
	if s, ok, err := parsePoolCell(name); ok {
		return s, err
	}
	bad := fmt.Errorf("bench: scenario %q: want quick, full, matrix, pool, pool-family, or names like m-base, m-cjk+tokenizer, pool-2x300, pool-failover, pool-tiers, pool-2x300+code+tokenizer, rpm-b1s-k3, tpm-b60s-k8, cost-k3, outage-k3, adaptive-k3, slowdown-k3, tenants-k3, fair-k3", name)
	parts := strings.Split(name, "-")
	k, err := strconv.Atoi(strings.TrimPrefix(parts[len(parts)-1], "k"))
	if err != nil || !strings.HasPrefix(parts[len(parts)-1], "k") || k < 1 || k > 64 {
		return Scenario{}, bad
	}
	s := Scenario{Name: name, Workers: k, Burst: time.Second}
	switch {
	case len(parts) == 2 && parts[0] == "cost":
		s.Bound = BoundNone
	case len(parts) == 2 && parts[0] == "outage":
		s.Bound, s.Outage = BoundRPM, OutageDefault
	case len(parts) == 2 && (parts[0] == KindAdaptive || parts[0] == KindSlowDown || parts[0] == KindTenants || parts[0] == KindFair):
		s.Bound, s.Kind = BoundRPM, parts[0]
	case len(parts) == 3 && (parts[0] == "rpm" || parts[0] == "tpm") && strings.HasPrefix(parts[1], "b"):
		s.Bound = Bound(parts[0])
		if s.Burst, err = time.ParseDuration(parts[1][1:]); err != nil || s.Burst <= 0 {
			return Scenario{}, bad
		}
	default:
		return Scenario{}, bad
	}
	return s, nil
}

// Payload is the prompt of bench task i.
func Payload(run string, i int) *tasks.Payload {
	return &tasks.Payload{
		ID:              fmt.Sprintf("%s-%06d", run, i),
		Model:           "gpt-4o-mini",
		Input:           tasks.Input{Text: fmt.Sprintf("bench prompt %06d: answer briefly", i)},
		MaxOutputTokens: MaxOutputTokens,
		Queue:           run,
	}
}

// TaskCost is the tokens one bench task costs against the fake's TPM
// bucket: the fake's input estimate (characters/4 rounded up, plus 4 per
// text) plus MaxOutputTokens. Every bench prompt has the same length.
func TaskCost() int {
	chars := utf8.RuneCountInString(Payload("x", 0).Input.Text)
	return (chars+3)/4 + 4 + MaxOutputTokens
}

// limits is what the fake enforces in one scenario, and the task count.
type limits struct {
	rpm, tpm int
	burst    time.Duration
	tasks    int
	rate     float64 // binding limit in tasks per second (0 = unlimited)
}

// limitsFor sizes scenario s under c: the binding limit, the other limit
// left unlimited (RPM-bound) or 4x looser (TPM-bound), and enough tasks to
// empty the burst allowance and then run c.Duration at the limit.
func (c Config) limitsFor(s Scenario) limits {
	if s.Cell != nil {
		return c.cellLimits(s)
	}
	l := limits{burst: s.Burst}
	if c.Burst > 0 {
		l.burst = c.Burst
	}
	switch s.Bound {
	case BoundRPM:
		l.rpm, l.rate = c.RPM, float64(c.RPM)/60
	case BoundTPM:
		l.tpm, l.rpm = c.TPM, 4*c.RPM
		l.rate = float64(c.TPM) / float64(TaskCost()) / 60
	}
	switch {
	case c.Tasks > 0:
		l.tasks = c.Tasks
	case s.Bound == BoundNone:
		l.tasks = CostTasksDefault
	default:
		burstTasks := math.Max(1, l.rate*l.burst.Seconds())
		d := c.Duration.Seconds()
		if s.Kind == KindSlowDown {
			d *= 2 // room for the cut and the ramp back after the injection
		}
		l.tasks = int(math.Ceil(burstTasks + l.rate*d))
	}
	return l
}
