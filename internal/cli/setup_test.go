package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
)

// runCLI runs one promptq command line with stdin and returns its output.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	var in io.Reader = strings.NewReader(stdin)
	err = Run(context.Background(), args, in, &out, &errOut)
	return out.String(), errOut.String(), err
}

// setupQueue returns a Redis for t, a queue name of its own (removed when t
// ends) and an inspector.
func setupQueue(t *testing.T) (*testutil.Redis, string, *asynq.Inspector) {
	t.Helper()
	r := testutil.NewRedis(t)
	queue := "cli-" + testutil.Name(t)
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, r.Client, queue) })
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	return r, queue, insp
}

// stderrLines returns the lines of stderr that are not warnings (a shared
// Redis may hold accounts whose workers consume other queues).
func stderrLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" && !strings.HasPrefix(l, "warning: ") {
			out = append(out, l)
		}
	}
	return out
}
