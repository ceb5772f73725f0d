package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/testutil"
)

// TestBadInputCLI: bad input is reported one line per problem, naming the
// line and the field, without a stack trace, and exits 1; good lines of the
// same file are still enqueued.
func TestBadInputCLI(t *testing.T) {
	t.Parallel()

	t.Run("malformed JSONL", func(t *testing.T) {
		url := needRedis(t)
		queue := "q-" + testutil.Name(t)
		ok := func(id string) string {
			return fmt.Sprintf(`{"id":%q,"model":"gpt-4o-mini","input":"hi","queue":%q}`, id, queue)
		}
		// Line numbers are 1-based; want maps each bad line to a word its
		// message must contain.
		input := strings.Join([]string{
			ok("good-1"),
			`{"id": "broken", "model":`,
			fmt.Sprintf(`{"id":"no-model","input":"hi","queue":%q}`, queue),
			fmt.Sprintf(`{"id":"neg","model":"m","input":"hi","max_output_tokens":-5,"queue":%q}`, queue),
			fmt.Sprintf("{\"id\":\"utf8\",\"model\":\"m\",\"input\":\"caf\xff\",\"queue\":%q}", queue),
			fmt.Sprintf(`{"id":"empty","model":"m","input":"","queue":%q}`, queue),
			"",
			ok("good-2"),
		}, "\n") + "\n"
		want := map[int]string{2: "JSON", 3: "model", 4: "max_output_tokens", 5: "UTF-8", 6: "input"}

		out, errOut, code := runCLI(t, input, "enqueue", "--redis", url, "--file", "-")
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if got, w := strings.TrimSpace(out), "enqueued: 2, duplicates: 0, invalid: 5"; got != w {
			t.Errorf("stdout %q, want %q", got, w)
		}
		got := map[int]string{}
		for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
			var n int
			if strings.HasPrefix(l, "warning: ") { // e.g. no worker consumes the queue yet
				continue
			}
			if _, err := fmt.Sscanf(l, "line %d:", &n); err != nil {
				t.Errorf("stderr line %q is not \"line N: ...\"", l)
				continue
			}
			if _, dup := got[n]; dup {
				t.Errorf("line %d reported twice", n)
			}
			got[n] = l
		}
		for n, word := range want {
			if !strings.Contains(got[n], word) {
				t.Errorf("line %d: message %q, want one naming %q", n, got[n], word)
			}
		}
		if len(got) != len(want) {
			t.Errorf("stderr reports %d lines, want %d:\n%s", len(got), len(want), errOut)
		}
		n := getStatus(t, url, "").Queues[queue].Pending
		if n != 2 {
			t.Errorf("queue %s holds %d pending tasks, want the 2 good lines", queue, n)
		}
		deleteQueue(t, url, queue)
	})

	t.Run("unreachable Redis", func(t *testing.T) {
		for _, args := range [][]string{
			{"enqueue", "--file", "-"},
			{"status"},
			{"results"},
			{"pause", "--account", "a"},
			{"resume"},
		} {
			_, errOut, code := runCLI(t, "", append(args, "--redis", "redis://127.0.0.1:1")...)
			requireOneLineError(t, args[0], errOut, code, "127.0.0.1:1")
		}
	})

	t.Run("worker without OPENAI_API_KEY", func(t *testing.T) {
		p := startWorker(t, []string{"OPENAI_API_KEY="}, "worker", "--redis", "redis://127.0.0.1:1")
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatal("worker without an API key did not exit")
		}
		code := p.cmd.ProcessState.ExitCode()
		requireOneLineError(t, "worker", p.Logs(), code, "OPENAI_API_KEY")
	})
}

// requireOneLineError asserts exit code 1 and a single stderr line that
// contains want and no Go panic or stack trace.
func requireOneLineError(t *testing.T, cmd, stderr string, code int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	switch {
	case code != 1:
		t.Errorf("%s: exit code %d, want 1 (stderr %q)", cmd, code, stderr)
	case len(lines) != 1:
		t.Errorf("%s: %d lines on stderr, want 1:\n%s", cmd, len(lines), stderr)
	case !strings.Contains(stderr, want):
		t.Errorf("%s: stderr %q does not name %q", cmd, stderr, want)
	case strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic"):
		t.Errorf("%s: stderr has a stack trace: %s", cmd, stderr)
	}
}
