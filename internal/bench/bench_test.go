package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	tests := []struct {
		spec    string
		workers []int
		want    []string
		wantErr bool
	}{
		{spec: "quick", want: []string{"rpm-b1s-k1", "tpm-b1s-k3", "rpm-b60s-k8", "cost-k3", "outage-k3"}},
		{spec: "quick", workers: []int{2}, want: []string{"rpm-b1s-k2", "tpm-b1s-k2", "rpm-b60s-k2", "cost-k2", "outage-k2"}},
		{spec: "rpm-b1s-k3, cost-k2", want: []string{"rpm-b1s-k3", "cost-k2"}},
		{spec: "rpm-b1s-k0", wantErr: true},
		{spec: "rpm-bxs-k3", wantErr: true},
		{spec: "foo-k3", wantErr: true},
		{spec: "rpm-b1s", wantErr: true},
		{spec: "adaptive-k3,slowdown-k1,tenants-k8", want: []string{"adaptive-k3", "slowdown-k1", "tenants-k8"}},
		{spec: "adaptive-k0", wantErr: true},
		{spec: "adaptive-b1s-k3", wantErr: true},
		{spec: "tenants", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseScenarios(tt.spec, tt.workers)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseScenarios(%q) = %v, want an error", tt.spec, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("names = %v, want %v", names, tt.want)
			}
		})
	}
	full, err := ParseScenarios("full", nil)
	if err != nil || len(full) != 2*2*3+3+1+4 {
		t.Fatalf("full: %d scenarios, err %v; want 20", len(full), err)
	}
	var tail []string
	for _, s := range full[len(full)-5:] {
		tail = append(tail, s.Name)
	}
	if got := strings.Join(tail, ","); got != "outage-k3,adaptive-k3,slowdown-k3,tenants-k3,fair-k3" {
		t.Fatalf("full ends with %s", got)
	}
	quick, _ := ParseScenarios("quick", nil)
	for _, s := range quick {
		if s.Kind != "" {
			t.Errorf("quick includes feature scenario %s", s.Name)
		}
	}
	feat, _ := ParseScenarios("adaptive-k3,slowdown-k2,tenants-k8,fair-k3", nil)
	for i, want := range []string{KindAdaptive, KindSlowDown, KindTenants, KindFair} {
		if f := feat[i]; f.Kind != want || f.Bound != BoundRPM || f.Burst != time.Second || f.Outage != 0 {
			t.Errorf("%s: parsed %+v, want kind %s, RPM-bound, burst 1s, no outage", f.Name, f, want)
		}
	}
	if feat[1].Workers != 2 || feat[2].Workers != 8 {
		t.Errorf("workers %d, %d; want 2, 8", feat[1].Workers, feat[2].Workers)
	}
	s, _ := ParseScenarios("tpm-b60s-k8,outage-k3", nil)
	if s[0].Bound != BoundTPM || s[0].Burst != time.Minute || s[0].Workers != 8 || s[1].Outage == 0 || s[1].Bound != BoundRPM {
		t.Fatalf("parsed %+v", s)
	}
}

func TestLimitsFor(t *testing.T) {
	c := Config{Binary: "x"}.WithDefaults()
	tests := []struct {
		name      string
		rpm, tpm  int
		tasks     int
		rateTasks float64
	}{
		// 20 tasks/s: burst 1s holds 20, then 10s at the limit.
		{"rpm-b1s-k1", 1200, 0, 220, 20},
		{"rpm-b60s-k8", 1200, 0, 1400, 20},
		{"tpm-b1s-k3", 4800, 1200 * TaskCost(), 220, 20},
		{"cost-k3", 0, 0, CostTasksDefault, 0},
		{"adaptive-k3", 1200, 0, 220, 20},
		{"tenants-k3", 1200, 0, 220, 20},
		{"fair-k3", 1200, 0, 220, 20},
		// Twice the time at the limit, for the cut and the ramp back.
		{"slowdown-k3", 1200, 0, 420, 20},
	}
	for _, tt := range tests {
		s, err := ParseScenarios(tt.name, nil)
		if err != nil {
			t.Fatal(err)
		}
		l := c.limitsFor(s[0])
		if l.rpm != tt.rpm || l.tpm != tt.tpm || l.tasks != tt.tasks || l.rate != tt.rateTasks {
			t.Errorf("%s: limits %+v, want rpm %d tpm %d tasks %d rate %v", tt.name, l, tt.rpm, tt.tpm, tt.tasks, tt.rateTasks)
		}
	}
}

func TestParseCommandStats(t *testing.T) {
	txt := "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_zcard:calls=3,usec=3,usec_per_call=1.00\r\ncmdstat_info:calls=2,usec=50,usec_per_call=25.00\r\n"
	before, err := parseCommandStats(txt)
	if err != nil {
		t.Fatal(err)
	}
	if before["evalsha"] != 12 || before["zcard"] != 3 || before["info"] != 2 {
		t.Fatalf("parsed %v", before)
	}
	after := commandStats{"evalsha": 20, "zcard": 3, "info": 3, "lpush": 5}
	d := after.sub(before)
	if len(d) != 3 || d["evalsha"] != 8 || d["lpush"] != 5 || d["info"] != 1 || d.total() != 14 {
		t.Fatalf("delta %v", d)
	}
	if _, err := parseCommandStats("# Commandstats\r\n"); err == nil {
		t.Fatal("empty commandstats: want an error")
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tt := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {10, 1}, {100, 10}} {
		if got := percentile(xs, tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty: want 0")
	}
}

// TestRunTiny runs one tiny scenario end to end in both modes: a throwaway
// redis-server, the fake provider, one worker process of a freshly built
// promptq binary, 20 tasks under limits that do not bind.
func TestRunTiny(t *testing.T) {
	bin := buildForRun(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Config{
		Binary: bin, Scenarios: "rpm-b1s-k1", Concurrency: 4, Tasks: 20,
		RPM: 600_000, Latency: 10 * time.Millisecond, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if rep.Redis != "throwaway" || len(rep.Scenarios) != 1 {
		t.Fatalf("report: redis %q, %d scenarios", rep.Redis, len(rep.Scenarios))
	}
	s := rep.Scenarios[0]
	for _, r := range []RunResult{s.Promptq, s.Naive} {
		t.Run(r.Mode, func(t *testing.T) {
			if r.Tasks != 20 || r.Completed != 20 || r.Lost != 0 || r.Archived != 0 {
				t.Errorf("tasks %d completed %d archived %d lost %d; want 20 completed, 0 lost", r.Tasks, r.Completed, r.Archived, r.Lost)
			}
			if r.OK != 20 || r.Requests != 20 || r.DuplicateTasks != 0 || r.DuplicateOK != 0 {
				t.Errorf("provider saw %d requests, %d OK, %d duplicated; want 20, 20, 0", r.Requests, r.OK, r.DuplicateTasks)
			}
			if r.CommandsTotal <= 0 || r.CommandsPerTask <= 0 || len(r.Commands) == 0 || r.SentTotal <= 0 || r.SentPerTask[OwnerAsynq] <= 0 {
				t.Errorf("no Redis command figures: %+v", r.Commands)
			}
			if _, ok := r.Commands["info"]; ok {
				t.Error("the bench's own INFO calls are counted")
			}
			if r.HandlerP50 <= 0 || r.HandlerP99 < r.HandlerP50 || r.E2EP50 <= 0 || r.E2EP99 < r.E2EP50 {
				t.Errorf("latencies handler %v/%v e2e %v/%v", r.HandlerP50, r.HandlerP99, r.E2EP50, r.E2EP99)
			}
			if r.Elapsed <= 0 || r.Wall <= 0 || r.Binding != "requests" {
				t.Errorf("elapsed %v wall %v binding %q", r.Elapsed, r.Wall, r.Binding)
			}
		})
	}
	// Quota control costs Redis scripts; the naive baseline sends none of promptq's.
	if s.Promptq.EvalshaPerTask <= s.Naive.EvalshaPerTask || s.Promptq.PromptqEvalshaPerTask < 1 {
		t.Errorf("evalsha/task promptq %v (its own %v) vs naive %v", s.Promptq.EvalshaPerTask, s.Promptq.PromptqEvalshaPerTask, s.Naive.EvalshaPerTask)
	}
	if n := s.Naive.SentPerTask[OwnerPromptq]; n > 0.1 {
		t.Errorf("naive run sent %v promptq commands per task, want ~0 (account registration aside)", n)
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "rpm-b1s-k1") {
		t.Fatalf("table (err %v):\n%s", err, table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Scenarios) != 1 || back.Scenarios[0].Promptq.Completed != 20 {
		t.Fatalf("JSON round trip: %v", err)
	}
}

func TestParseMonitorLine(t *testing.T) {
	tests := []struct {
		line, owner, cmd string
		ok               bool
	}{
		{`+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc" "2" "promptq:{a}:limits" "promptq:{a}:inflight" "1"` + "\r\n", OwnerPromptq, "evalsha", true},
		{`+1700000000.123456 [0 127.0.0.1:5555] "evalsha" "abc" "1" "asynq:{q}:pending"` + "\r\n", OwnerAsynq, "evalsha", true},
		{`+1700000000.123456 [0 127.0.0.1:5555] "ZCARD" "asynq:{q}:completed"` + "\r\n", OwnerAsynq, "zcard", true},
		{`+1700000000.123456 [0 127.0.0.1:5555] "HGETALL" "promptq:{a}:pause"` + "\r\n", OwnerPromptq, "hgetall", true},
		{`+1700000000.123456 [0 127.0.0.1:5555] "PING"` + "\r\n", OwnerOther, "ping", true},
		{`+1700000000.123456 [0 127.0.0.1:5555] "SET" "x\"y" "promptq:z"` + "\r\n", OwnerOther, "set", true},
		{`+1700000000.123456 [0 lua] "HMGET" "promptq:{a}:limits" "x"` + "\r\n", "", "", false},
		{"+OK\r\n", "", "", false},
	}
	for _, tt := range tests {
		owner, cmd, ok := parseMonitorLine(tt.line)
		if owner != tt.owner || cmd != tt.cmd || ok != tt.ok {
			t.Errorf("parseMonitorLine(%q) = %q, %q, %v; want %q, %q, %v", tt.line, owner, cmd, ok, tt.owner, tt.cmd, tt.ok)
		}
	}
}

// buildForRun skips a test that starts processes under -short or without
// redis-server, and builds a fresh promptq binary for it.
func buildForRun(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	bin := filepath.Join(t.TempDir(), "promptq")
	build := exec.Command("go", "build", "-o", bin, "github.com/promptq/promptq/cmd/promptq")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build promptq: %v\n%s", err, out)
	}
	return bin
}
