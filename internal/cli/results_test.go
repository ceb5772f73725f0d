package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/tasks"
)

// End to end against Redis: enqueue two tasks, see them pending in status,
// then results --wait --ids returns once both are finished (archived here,
// as no worker runs) and reports an id no queue knows instead of waiting
// for it.
func TestEnqueueStatusResults(t *testing.T) {
	t.Parallel()
	r, queue, insp := setupQueue(t)
	input := fmt.Sprintf(`{"id":"e2e-1","model":"m","input":"one","queue":%q}`+"\n"+
		`{"id":"e2e-2","model":"m","input":"two","queue":%q,"metadata":{"k":"v"}}`+"\n", queue, queue)
	if out, errOut, err := runCLI(t, input, "enqueue", "--redis", r.URL, "--file", "-"); err != nil {
		t.Fatalf("enqueue: %v\n%s%s", err, out, errOut)
	}

	out, _, err := runCLI(t, "", "status", "--redis", r.URL, "--json")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var rep status.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if q := rep.Queues[queue]; q.Pending != 2 || q.Completed+q.Archived != 0 {
		t.Fatalf("status of %s: %+v, want 2 pending", queue, q)
	}

	type outcome struct {
		out, errOut string
		err         error
	}
	res := make(chan outcome, 1)
	go func() {
		o, e, err := runCLI(t, "", "results", "--redis", r.URL, "--queue", queue, "--wait",
			"--ids", "e2e-1, e2e-2,no-such-id", "--wait-timeout", "30s")
		res <- outcome{o, e, err}
	}()
	select {
	case o := <-res:
		t.Fatalf("results --wait returned before the tasks finished: %v\n%s", o.err, o.errOut)
	case <-time.After(2 * waitPoll):
	}
	for _, id := range []string{"e2e-1", "e2e-2"} {
		if err := insp.ArchiveTask(queue, id); err != nil {
			t.Fatal(err)
		}
	}
	var o outcome
	select {
	case o = <-res:
	case <-time.After(20 * time.Second):
		t.Fatal("results --wait did not return after the tasks finished")
	}
	if o.err != nil {
		t.Fatalf("results: %v\n%s", o.err, o.errOut)
	}
	if !strings.Contains(o.errOut, `task "no-such-id" is not in any queue`) ||
		!strings.Contains(o.errOut, "] 3/3 finished") {
		t.Errorf("results --wait progress %q: want the unknown id reported and 3/3 finished", o.errOut)
	}
	got := map[string]tasks.Result{}
	sc := bufio.NewScanner(strings.NewReader(o.out))
	for sc.Scan() {
		var r tasks.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("results line %q: %v", sc.Text(), err)
		}
		got[r.ID] = r
	}
	if len(got) != 2 || got["e2e-1"].Status != tasks.StatusArchived || got["e2e-2"].Metadata["k"] != "v" {
		t.Errorf("results %+v, want e2e-1 and e2e-2 archived, e2e-2 with its metadata", got)
	}
}
