package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/bench"
	"github.com/promptq/promptq/internal/config"
)

// benchSummary heads `promptq bench --help`.
const benchSummary = "Measure promptq against the naive baseline (--quota-control=false) on the same load, side by side:\n" +
	"a throwaway redis-server (unless --redis), the fake provider in-process, K worker processes, N tasks.\n" +
	"Scenarios: quick (default, under 3 minutes), full, or names like rpm-b1s-k3, tpm-b60s-k8, cost-k3, outage-k3,\n" +
	"adaptive-k3 (--adaptive-concurrency vs plain promptq vs naive), slowdown-k3 (503 slow_down and the ramp back),\n" +
	"tenants-k3 (tenant A capped at half the account next to an uncapped tenant B, vs no budgets),\nfair-k3 (tenants A and B interleaved 10:1 in one queue, fair sharing vs --fair-share=false); full has them all.\n" +
	"matrix: promptq vs naive on realistic prompts (internal/corpus) against a family of fake providers, one line per cell:\n" +
	"base m-base = chars charge (ceil(characters/4) + max tokens), prose, TPM-bound, burst 1s, 300ms ±100ms latency,\n" +
	"retry-after in whole seconds with the precise wait only in the body, K=3; each other cell changes words of it, e.g.\n" +
	"m-cjk+tokenizer or m-k8+chat+noisytok+lat100ms (words: chars tokenizer noisy noisytok tok120 tok80, prose code cjk chat,\n" +
	"body headers, b1s b60s, tpm rpm, lat100ms lat300ms lat2s, halve, k1-k64). Utilisation is measured after --warmup\n" +
	"from the fake's own charge accounting; a cell runs --warmup + --cell-duration at its limit per side.\n" +
	"pool: promptq alone (the naive baseline has no pool) on a pool of accounts (worker --pool), 3 workers, prose prompts,\n" +
	"burst 10s (--burst replaces it): pool-2x300 (two accounts of 300 RPM / 24k TPM, utilisation of the combined limit),\n" +
	"pool-failover (one account answers insufficient_quota after a third of the batch) and pool-tiers (plus a 120 RPM overflow\n" +
	"tier with 2s latency; phase A offers half the primaries' limit, phase B a backlog beyond them); about 4 minutes in all.\n" +
	"A pool cell name may add provider words after its base name, as matrix cells do: pool-2x300+tokenizer+code,\n" +
	"pool-failover+cjk+noisytok (words: chars tokenizer noisy noisytok tok120 tok80, prose code cjk chat, body headers,\n" +
	"lat100ms lat300ms lat2s, b1s b60s); they change the fake provider, the prompts and the sizing, the base name the shape.\n" +
	"pool-family: pool-2x300+tokenizer+code, pool-2x300+cjk+tokenizer, pool-2x300+chat+noisy, pool-2x300+headers+lat100ms\n" +
	"and pool-failover+tokenizer+chat; about 7 minutes."

// benchFlags are the flags of `promptq bench`.
type benchFlags struct {
	cfg      bench.Config
	redisURL string
	workers  string
	asJSON   bool
	out      string
	seed     int
}

func (b *benchFlags) register(f *config.Flags) {
	f.String(&b.redisURL, "redis", "BENCH_REDIS_URL", "", "use this Redis instead of a throwaway redis-server (commandstats then include other clients)")
	f.String(&b.cfg.Scenarios, "scenarios", "BENCH_SCENARIOS", bench.ScenariosDefault, "quick, full, matrix, pool, or a comma-separated list of scenario names")
	f.String(&b.workers, "workers", "BENCH_WORKERS", "1,3,8", "worker-process counts the scenario sets use (comma-separated, 1-64)")
	f.Int(&b.cfg.Concurrency, "concurrency", "BENCH_CONCURRENCY", bench.ConcurrencyDefault, "concurrency of each worker process (1-1000)")
	f.Int(&b.cfg.Tasks, "tasks", "BENCH_TASKS", 0, "tasks per run (0 = sized so each scenario runs --duration at its limit)")
	f.Int(&b.cfg.RPM, "rpm", "BENCH_RPM", bench.RPMDefault, "request limit of RPM-bound and outage scenarios (TPM-bound ones allow 4x)")
	f.Int(&b.cfg.TPM, "tpm", "BENCH_TPM", 0, "token limit of TPM-bound scenarios (0 = the same task rate as --rpm)")
	f.Duration(&b.cfg.Burst, "burst", "BENCH_BURST", 0, "replace every scenario's burst (bucket capacity as refill time); 0 = per scenario")
	f.Duration(&b.cfg.Latency, "latency", "BENCH_LATENCY", bench.LatencyDefault, "fake provider latency per request (jitter ±1/4 of it)")
	f.Duration(&b.cfg.Duration, "duration", "BENCH_DURATION", bench.DurationDefault, "target time at the limit per scenario (sizes --tasks 0)")
	f.Duration(&b.cfg.Outage, "outage", "BENCH_OUTAGE", bench.OutageDefault, "length of the insufficient_quota outage of outage scenarios")
	f.Duration(&b.cfg.Warmup, "warmup", "BENCH_WARMUP", bench.WarmupDefault, "start of the measured window after the first request (utilisation after warm-up)")
	f.Duration(&b.cfg.CellDuration, "cell-duration", "BENCH_CELL_DURATION", bench.CellDurationDefault, "time at the limit per matrix cell and side, after the warm-up (2s-1h)")
	f.Duration(&b.cfg.Drain, "drain", "BENCH_DRAIN", bench.DrainDefault, "how long a matrix run may go on after its cell duration to finish its tasks; the rest are reported unfinished (1s-1h)")
	f.Float(&b.cfg.MatrixRate, "matrix-rate", "BENCH_MATRIX_RATE", bench.MatrixRateDefault, "binding limit of matrix cells in tasks per second (0.5-1000)")
	f.Int(&b.seed, "seed", "BENCH_SEED", bench.SeedDefault, "seed of the matrix prompts and of the fake's charge noise (>= 1)")
	f.Bool(&b.asJSON, "json", "BENCH_JSON", false, "print the report as JSON instead of a table")
	f.String(&b.out, "out", "BENCH_OUT", "", "also write the JSON report to this file")
}

// config returns the bench.Config of the flags, validated.
func (b *benchFlags) config(progress io.Writer) (bench.Config, error) {
	cfg := b.cfg
	for _, w := range strings.Split(b.workers, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			return cfg, fmt.Errorf("--workers / BENCH_WORKERS %q: want comma-separated whole numbers", b.workers)
		}
		cfg.Workers = append(cfg.Workers, k)
	}
	if b.seed < 1 {
		return cfg, fmt.Errorf("--seed / BENCH_SEED must be >= 1, got %d", b.seed)
	}
	cfg.Seed = uint64(b.seed)
	bin, err := os.Executable()
	if err != nil {
		return cfg, fmt.Errorf("bench: find own executable: %v", err)
	}
	cfg.Binary, cfg.RedisURL, cfg.Progress = bin, b.redisURL, progress
	return cfg, cfg.WithDefaults().Validate()
}

func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var b benchFlags
	f := config.New("bench", benchSummary, stdout)
	b.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	cfg, err := b.config(stderr)
	if err != nil {
		return err
	}
	started := time.Now()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if rep != nil && len(rep.Scenarios) > 0 {
			// Keep what was measured before the failure.
			fmt.Fprintf(stderr, "bench: stopped after %d scenarios; their figures:\n", len(rep.Scenarios))
			_ = rep.WriteTable(stderr)
		}
		return err
	}
	fmt.Fprintf(stderr, "bench: finished in %.0fs\n", time.Since(started).Seconds())
	if b.out != "" {
		if err := writeJSONFile(b.out, rep); err != nil {
			return err
		}
	}
	if b.asJSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteTable(stdout)
}

// writeJSONFile writes the JSON report to path (--out).
func writeJSONFile(path string, rep *bench.Report) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJSON(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
