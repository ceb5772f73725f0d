package cli

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/config"
)

var flagLine = regexp.MustCompile(`^  --([a-z0-9-]+)( [A-Z]+)?$`)

// helpFlags returns each flag of a command's --help with the line that
// documents it.
func helpFlags(t *testing.T, command string) map[string]string {
	t.Helper()
	out, errOut, err := runCLI(t, "", command, "--help")
	if !errors.Is(err, config.ErrHelp) || errOut != "" {
		t.Fatalf("%s --help: %v, stderr %q", command, err, errOut)
	}
	flags := map[string]string{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if m := flagLine.FindStringSubmatch(l); m != nil && i+1 < len(lines) {
			flags[m[1]] = lines[i+1]
		}
	}
	return flags
}

// Every command's --help lists its flags, each with its environment
// variable; the worker documents its env-only API key too.
func TestHelpListsEveryFlagWithEnv(t *testing.T) {
	// How many flags each command has (update it with a new flag), and a
	// few it must show with their env.
	want := map[string]struct {
		n     int
		flags map[string]string
	}{
		"worker":      {36, map[string]string{"pool": "PROMPTQ_POOL", "concurrency": "WORKER_CONCURRENCY", "queues": "WORKER_QUEUES", "redis": "REDIS_URL", "quota-threshold": "QUOTA_THRESHOLD", "adaptive-max": "ADAPTIVE_MAX"}},
		"enqueue":     {11, map[string]string{"file": "PROMPTQ_FILE", "parallel": "ENQUEUE_PARALLEL", "max-retry": "MAX_RETRY"}},
		"status":      {7, map[string]string{"json": "PROMPTQ_JSON", "rate-window": "PROMPTQ_RATE_WINDOW", "account": "PROMPTQ_ACCOUNT"}},
		"results":     {8, map[string]string{"wait": "PROMPTQ_WAIT", "ids": "PROMPTQ_IDS", "wait-timeout": "PROMPTQ_WAIT_TIMEOUT"}},
		"pause":       {7, map[string]string{"for": "PAUSE_FOR", "until": "PAUSE_UNTIL", "reason": "PAUSE_REASON"}},
		"resume":      {4, map[string]string{"account": "PROMPTQ_ACCOUNT"}},
		"tenant":      {10, map[string]string{"tenant": "PROMPTQ_TENANT", "weight": "TENANT_WEIGHT"}},
		"fake-openai": {16, map[string]string{"accounts": "PROMPTQ_FAKE_ACCOUNTS", "addr": "FAKE_OPENAI_ADDR", "rpm": "FAKE_OPENAI_RPM", "retry-after": "FAKE_OPENAI_RETRY_AFTER"}},
		"demo":        {24, map[string]string{"tasks": "DEMO_TASKS", "workers": "DEMO_WORKERS", "rpm": "FAKE_OPENAI_RPM"}},
		"serve":       {16, map[string]string{"addr": "PROMPTQ_SERVE_ADDR", "admin-token": "PROMPTQ_ADMIN_TOKEN", "idle-timeout": "PROMPTQ_IDLE_TIMEOUT"}},
		"probe":       {2, map[string]string{"url": "PROMPTQ_PROBE_URL", "timeout": "PROMPTQ_PROBE_TIMEOUT"}},
		"bench":       {18, map[string]string{"scenarios": "BENCH_SCENARIOS", "workers": "BENCH_WORKERS", "seed": "BENCH_SEED"}},
	}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			w, ok := want[c.name]
			if !ok {
				t.Fatalf("command %s has no entry in this test", c.name)
			}
			flags := helpFlags(t, c.name)
			if len(flags) != w.n {
				t.Errorf("%s --help lists %d flags, want %d", c.name, len(flags), w.n)
			}
			for name, doc := range flags {
				if !strings.Contains(doc, "[env ") {
					t.Errorf("%s --help: --%s has no env variable: %q", c.name, name, doc)
				}
			}
			for name, env := range w.flags {
				if doc, ok := flags[name]; !ok || !strings.Contains(doc, "[env "+env+"]") {
					t.Errorf("%s --help: --%s with [env %s] missing (line %q)", c.name, name, env, doc)
				}
			}
		})
	}
	out, _, _ := runCLI(t, "", "worker", "--help")
	if !strings.Contains(out, "Environment only (never a flag):\n  OPENAI_API_KEY") {
		t.Error("worker --help does not document OPENAI_API_KEY")
	}
}

// promptq --help lists every command; no command or an unknown one is an
// error that shows the list on stderr.
func TestUsage(t *testing.T) {
	out, _, err := runCLI(t, "", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("usage lacks command %s", c.name)
		}
	}
	for _, args := range [][]string{nil, {"frobnicate"}} {
		_, errOut, err := runCLI(t, "", args...)
		if err == nil || !strings.Contains(errOut, "Commands:") {
			t.Errorf("promptq %v: %v, stderr %q; want an error and the usage on stderr", args, err, errOut)
		}
	}
}
