package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"time"
)

// Mode names the two sides of a comparison.
const (
	ModePromptq = "promptq" // quota control on
	ModeNaive   = "naive"   // --quota-control=false
)

// Report is the result of one bench: every scenario with both modes.
type Report struct {
	StartedAt   time.Time        `json:"started_at"`
	Redis       string           `json:"redis"` // "throwaway" or "shared"
	Concurrency int              `json:"concurrency"`
	Latency     string           `json:"latency"`
	TaskCost    int              `json:"task_cost_tokens"`
	Warmup      string           `json:"warmup"`
	Scenarios   []ScenarioResult `json:"scenarios"`
}

// ScenarioResult holds both runs of one scenario and their ratios.
type ScenarioResult struct {
	Scenario
	RPM   int `json:"rpm"` // 0 = unlimited
	TPM   int `json:"tpm"` // 0 = unlimited
	Tasks int `json:"tasks"`
	// Promptq is the promptq side: with --adaptive-concurrency in the
	// adaptive scenario, with tenant budgets in the tenants scenario.
	Promptq RunResult `json:"promptq"`
	// Naive is the baseline: --quota-control=false, except in the tenants
	// scenario where it is promptq without tenant budgets.
	Naive RunResult `json:"naive"`
	// Plain is plain promptq (no --adaptive-concurrency) in the adaptive
	// scenario; nil elsewhere.
	Plain *RunResult `json:"plain_promptq,omitempty"`
	// Pool is a pool cell's own figures (nil elsewhere); its Naive is empty.
	Pool  *PoolResult `json:"pool,omitempty"`
	Ratio Ratios      `json:"ratio"`
	// ExtraCommandsPerTask is the promptq run's Redis commands executed per
	// task (commandstats, Lua's included) minus the naive run's.
	ExtraCommandsPerTask float64 `json:"extra_commands_executed_per_task"`
	// ExtraEvalshaPerTask is the EVALSHA part of ExtraCommandsPerTask.
	ExtraEvalshaPerTask float64 `json:"extra_evalsha_per_task"`
	// ExtraSentPerTask is the promptq run's commands sent per task (MONITOR,
	// every owner) minus the naive run's.
	ExtraSentPerTask float64 `json:"extra_commands_sent_per_task"`
}

// Ratios are promptq's figure divided by the naive one (0 when the naive figure is 0).
type Ratios struct {
	Utilisation  float64 `json:"utilisation"`
	Throttled    float64 `json:"throttled"`
	Elapsed      float64 `json:"elapsed"`
	CommandsTask float64 `json:"commands_per_task"`
	HandlerP50   float64 `json:"handler_p50"`
	E2EP50       float64 `json:"e2e_p50"`
}

// RunResult is what one mode of one scenario measured.
type RunResult struct {
	Mode string `json:"mode"`
	// Tasks enqueued; Completed and Archived at the end; Lost = the rest.
	Tasks     int `json:"tasks"`
	Completed int `json:"completed"`
	Archived  int `json:"archived"`
	Lost      int `json:"lost"`
	// Provider-side counters (the fake's Stats).
	Requests      int `json:"requests"`
	OK            int `json:"ok"`
	RateLimited   int `json:"rate_limited"`
	QuotaErrors   int `json:"quota_errors"`
	SlowDowns     int `json:"slow_downs,omitempty"` // 503 slow_down answers
	TokensCharged int `json:"tokens_charged"`
	MaxInFlight   int `json:"max_in_flight"`
	// Elapsed is from the first request to the admission of the last
	// answered one (last OK minus the configured latency), in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Wall is the whole run, workers started to last task finished, in seconds.
	Wall float64 `json:"wall_s"`
	// Utilisation is the binding limit's (work - burst capacity) / (Elapsed
	// * limit per second); Binding names that limit. Zero when unlimited.
	Utilisation        float64 `json:"utilisation"`
	Binding            string  `json:"binding,omitempty"`
	RequestUtilisation float64 `json:"request_utilisation,omitempty"`
	TokenUtilisation   float64 `json:"token_utilisation,omitempty"`
	Throttled          float64 `json:"throttled_share"` // 429 rate_limit / requests
	// Commands executed by Redis (INFO commandstats deltas: a script's
	// redis.call commands count as well as the EVALSHA), without the bench's own.
	CommandsTotal   int64            `json:"redis_commands_executed"`
	CommandsPerTask float64          `json:"redis_commands_executed_per_task"`
	EvalshaPerTask  float64          `json:"evalsha_per_task"`
	Commands        map[string]int64 `json:"redis_commands_executed_by_name"`
	// Commands sent by clients (MONITOR; each is at most one round trip,
	// fewer when pipelined), by owner (promptq, asynq, other) and name.
	SentTotal             int64                       `json:"redis_commands_sent"`
	SentPerTask           map[string]float64          `json:"redis_commands_sent_per_task_by_owner"`
	PromptqEvalshaPerTask float64                     `json:"promptq_evalsha_per_task"`
	Sent                  map[string]map[string]int64 `json:"redis_commands_sent_by_owner"`
	HandlerP50            float64                     `json:"handler_p50_ms"`
	HandlerP99            float64                     `json:"handler_p99_ms"`
	E2EP50                float64                     `json:"e2e_p50_ms"`
	E2EP99                float64                     `json:"e2e_p99_ms"`
	DuplicateTasks        int                         `json:"tasks_sent_more_than_once"`
	DuplicateOK           int                         `json:"duplicate_ok"` // answers beyond one per completed task
	Outage                *Outage                     `json:"outage,omitempty"`
	// AdaptiveLimit is the account's cluster-wide adaptive concurrency
	// limit at the end of a run with --adaptive-concurrency.
	AdaptiveLimit int            `json:"adaptive_limit,omitempty"`
	SlowDown      *SlowDownTrace `json:"slow_down,omitempty"`
	Tenants       *Tenants       `json:"tenants,omitempty"`
	WorkerErrors  string         `json:"worker_errors,omitempty"`
	// Concurrency is each worker's concurrency in this run.
	Concurrency int `json:"concurrency"`
	// Window is what the fake's accounting shows after the warm-up (nil
	// for the unlimited cost scenarios).
	Window *Window `json:"window,omitempty"`
	// CallsAfterAnswered counts provider calls for a task ID that had
	// already been answered: duplicate calls.
	CallsAfterAnswered int `json:"duplicate_calls"`
	// Cut is true when a matrix run was stopped Config.Drain after its cell
	// duration with tasks still queued; Unfinished counts them (they are
	// not lost).
	Cut        bool `json:"cut,omitempty"`
	Unfinished int  `json:"unfinished,omitempty"`
}

// SentTotalPerTask is every client command sent per task.
func (r RunResult) SentTotalPerTask() float64 {
	var t float64
	for _, v := range r.SentPerTask {
		t += v
	}
	return t
}

// Outage is what the insufficient_quota scenario saw.
type Outage struct {
	// InFlightAtFirst429 is how many requests the provider was serving when
	// it sent the first insufficient_quota 429.
	InFlightAtFirst429 int `json:"in_flight_at_first_429"`
	// RequestsAfterFirst429 is how many requests reached the provider after
	// it while the outage lasted (a well-behaved client sends at most the
	// ones already in flight).
	RequestsAfterFirst429 int `json:"requests_after_first_429"`
	// RetriesRunAtResume is how many tasks the operator step moved from the
	// retry set back to pending (they were parked with the pause's delay).
	RetriesRunAtResume int `json:"retries_run_at_resume"`
	// Timeline lists what happened, in seconds since the workers started.
	Timeline []Event `json:"timeline"`
}

// Event is one point of an outage timeline.
type Event struct {
	At   float64 `json:"at_s"`
	What string  `json:"what"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func f0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func f3(v float64) string  { return fmt.Sprintf("%.3f", v) }
func pct(v float64) string { return fmt.Sprintf("%.2f%%", 100*v) }

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// percentile returns the p-th percentile (0..100) of xs by nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
