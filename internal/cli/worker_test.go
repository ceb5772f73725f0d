package cli

import (
	"os"
	"strings"
	"testing"
)

// A flag out of range is one line naming the flag, its env variable and the
// allowed range, before anything connects to Redis.
func TestFlagValidation(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "") // validation comes before the key check
	for _, tc := range []struct {
		args []string
		want []string // parts of the error
	}{
		{[]string{"worker", "--concurrency", "0"}, []string{"--concurrency / WORKER_CONCURRENCY", "between 1 and 1000"}},
		{[]string{"worker", "--rpm", "-1"}, []string{"--rpm / PROMPTQ_RPM", ">= 0"}},
		{[]string{"worker", "--daily-token-limit", "-5"}, []string{"--daily-token-limit / DAILY_TOKEN_LIMIT", ">= 0"}},
		{[]string{"worker", "--quota-threshold", "0"}, []string{"--quota-threshold / QUOTA_THRESHOLD", "(0, 1]"}},
		{[]string{"worker", "--quota-threshold", "NaN"}, []string{"--quota-threshold / QUOTA_THRESHOLD", "(0, 1]"}},
		{[]string{"worker", "--pause-duration-hours", "0"}, []string{"--pause-duration-hours / PAUSE_DURATION_HOURS", "1s..168h"}},
		{[]string{"worker", "--pause-duration-hours", "200"}, []string{"--pause-duration-hours / PAUSE_DURATION_HOURS", "1s..168h"}},
		{[]string{"worker", "--pause-duration-hours", "NaN"}, []string{"--pause-duration-hours / PAUSE_DURATION_HOURS", "1s..168h"}},
		{[]string{"worker", "--slowdown-cut", "1"}, []string{"--slowdown-cut / SLOWDOWN_CUT", "(0, 1)"}},
		{[]string{"worker", "--slowdown-growth", "11"}, []string{"--slowdown-growth / SLOWDOWN_GROWTH", "(0, 10]"}},
		{[]string{"worker", "--slowdown-interval", "500ms"}, []string{"--slowdown-interval / SLOWDOWN_INTERVAL", "1s and 24h"}},
		{[]string{"worker", "--reservation-ttl", "25h", "--request-timeout", "1m"}, []string{"--reservation-ttl / RESERVATION_TTL", "1s and 24h"}},
		{[]string{"worker", "--reservation-ttl", "1m", "--request-timeout", "5m"}, []string{"--reservation-ttl / RESERVATION_TTL", "--request-timeout (5m0s)"}},
		{[]string{"worker", "--retention", "10s"}, []string{"--retention / RESULT_RETENTION", "1m and 8760h"}},
		{[]string{"worker", "--adaptive-concurrency", "--adaptive-initial", "50", "--adaptive-max", "10"},
			[]string{"--adaptive-initial / ADAPTIVE_INITIAL", "--adaptive-max / ADAPTIVE_MAX", "Max (10)"}},
		{[]string{"worker", "--adaptive-concurrency", "--adaptive-max", "200000"}, []string{"--adaptive-max / ADAPTIVE_MAX", "100000"}},
		{[]string{"worker", "--token-estimator", "words"}, []string{"--token-estimator / TOKEN_ESTIMATOR", "auto or chars"}},
		{[]string{"worker", "--daily-timezone", "Mars/Olympus"}, []string{"--daily-timezone / DAILY_TIMEZONE", "unknown time zone"}},
		{[]string{"enqueue", "--file", "x", "--parallel", "65"}, []string{"--parallel / ENQUEUE_PARALLEL", "between 1 and 64"}},
		{[]string{"enqueue", "--file", "x", "--max-retry", "-1"}, []string{"--max-retry / MAX_RETRY", "between 0 and 1000"}},
		{[]string{"enqueue"}, []string{"--file is required"}},
		{[]string{"demo", "--workers", "33"}, []string{"--workers / DEMO_WORKERS", "between 1 and 32"}},
		{[]string{"serve", "--max-client-requests", "0"}, []string{"--max-client-requests / PROMPTQ_MAX_CLIENT_REQUESTS", "between 1 and 10000"}},
		{[]string{"probe", "--url", "ftp://x"}, []string{"--url / PROMPTQ_PROBE_URL", "http://"}},
		{[]string{"bench", "--seed", "0"}, []string{"--seed / BENCH_SEED", ">= 1"}},
		{[]string{"fake-openai", "--addr", "127.0.0.1:0", "--accounts", "east:rpm=300;west:rpm=-1"}, []string{"--accounts / PROMPTQ_FAKE_ACCOUNTS", "west", "rpm"}},
		{[]string{"fake-openai", "--addr", "127.0.0.1:0", "--accounts", "east;east"}, []string{"--accounts / PROMPTQ_FAKE_ACCOUNTS", "east"}},
		{[]string{"worker", "--concurrency", "many"}, []string{"worker:", "-concurrency", "promptq worker --help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := runCLI(t, "", tc.args...)
			if err == nil {
				t.Fatalf("no error; stdout %q", out)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is several lines: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if errOut != "" {
				t.Errorf("stderr %q, want nothing (the caller prints the error once)", errOut)
			}
		})
	}
}

// Values at the edges of the ranges pass validation: the worker goes on to
// ask for its API key.
func TestFlagValidationAccepts(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "")
	for _, args := range [][]string{
		{"worker"},
		{"worker", "--quota-threshold", "1", "--pause-duration-hours", "168", "--rpm", "0"},
		{"worker", "--pause-duration-hours", "0.0002778", "--slowdown-cut", "0.01", "--slowdown-growth", "10"},
		{"worker", "--adaptive-concurrency", "--adaptive-initial", "1", "--adaptive-max", "100000"},
		{"worker", "--reservation-ttl", "24h", "--request-timeout", "24h"},
	} {
		_, _, err := runCLI(t, "", args...)
		if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY is not set") {
			t.Errorf("%v: %v, want only the missing API key", args, err)
		}
	}
}

// A worker with --pool: a bad pool file or a flag the pool file replaces is
// one line naming the file's line and field, or the flags, before anything
// connects; the key is never in it.
func TestWorkerPoolErrors(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.yaml"
	bad := dir + "/bad.yaml"
	writeFile(t, good, "accounts:\n  - name: east\n    base_url: http://127.0.0.1:1/v1\n    api_key_env: POOL_TEST_KEY\n")
	writeFile(t, bad, "accounts:\n  - name: east\n    base_url: http://127.0.0.1:1/v1\n    api_key_env: POOL_TEST_KEY\n    tier: 0\n")
	t.Setenv("POOL_TEST_KEY", "sk-secret-pool-key-123456")
	t.Setenv("OPENAI_API_KEY", "")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"worker", "--pool", bad}, []string{"bad.yaml:5", `account "east"`, "tier", "between 1 and 9"}},
		{[]string{"worker", "--pool", good, "--account", "x"}, []string{"--pool / PROMPTQ_POOL", "--account"}},
		{[]string{"worker", "--pool", good, "--rpm", "60"}, []string{"--pool / PROMPTQ_POOL", "rpm and tpm per account"}},
		{[]string{"worker", "--pool", good, "--quota-control=false"}, []string{"--pool / PROMPTQ_POOL", "--quota-control"}},
		{[]string{"worker", "--pool", dir + "/missing.yaml"}, []string{"missing.yaml", "cannot be read"}},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			_, _, err := runCLI(t, "", tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") || strings.Contains(msg, "sk-secret") {
				t.Errorf("error %q: want one line without the key", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
