package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/status"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

func runResults(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c       common
		queue   string
		out     string
		wait    bool
		ids     string
		timeout time.Duration
	)
	f := config.New("results", "Export finished tasks as JSONL, one line each:\n"+
		`  {"id","task_id","queue","status":"completed"|"archived","output_text","usage":{...},"error","attempts",...}`, stdout)
	c.register(f, false)
	f.String(&queue, "queue", "PROMPTQ_QUEUE", "", "only this queue (default: every queue)")
	f.String(&out, "out", "PROMPTQ_OUT", "", "write to this file instead of standard output")
	f.Bool(&wait, "wait", "PROMPTQ_WAIT", false, "first wait until the queue (or --ids) has no unfinished task, showing progress")
	f.String(&ids, "ids", "PROMPTQ_IDS", "", "with --wait: comma-separated task ids to wait for (default: the whole queue)")
	f.Duration(&timeout, "wait-timeout", "PROMPTQ_WAIT_TIMEOUT", 0, "with --wait: give up after this long (0 = never)")
	if err := f.Parse(args); err != nil {
		return err
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	w := stdout
	if out != "" {
		fh, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("results: %v", err)
		}
		defer fh.Close()
		w = fh
	}
	queues := []string{queue}
	if queue == "" {
		if queues, err = insp.Queues(); err != nil {
			return err
		}
		sort.Strings(queues)
	}
	if wait {
		wctx := ctx
		if timeout > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		note := func() string {
			accts, err := pausegate.Accounts(wctx, rdb)
			if err != nil {
				return ""
			}
			n, _ := status.PauseNote(wctx, rdb, accts, queues)
			return n
		}
		if err := waitFinished(wctx, insp, queues, splitIDs(ids), note, stderr); err != nil {
			return fmt.Errorf("results --wait: %w", err)
		}
	}
	enc := json.NewEncoder(w)
	n := 0
	for _, q := range queues {
		err := tasks.ListResults(ctx, insp, q, func(r tasks.Result) error { n++; return enc.Encode(r) })
		if err != nil {
			return fmt.Errorf("results of queue %s: %w", q, err)
		}
	}
	if out != "" {
		fmt.Fprintf(stderr, "results: %d written to %s\n", n, out)
	}
	return nil
}

func splitIDs(s string) []string {
	var out []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// waitFinished blocks until every given id (or every task of queues) is
// completed or archived, printing a progress bar to w, with what holds the
// queues (pauseNote: "paused until T (reason)", "" when nothing does).
func waitFinished(ctx context.Context, insp *asynq.Inspector, queues []string, ids []string, pauseNote func() string, w io.Writer) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := ""
	unknown := map[string]bool{}
	for {
		done, total := 0, 0
		if len(ids) > 0 {
			total = len(ids)
			for _, id := range ids {
				found := false
				for _, q := range queues {
					_, err := tasks.GetResult(ctx, insp, q, id)
					if err == nil {
						done++
						found = true
						break
					}
					found = found || !(errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound))
				}
				if !found {
					// No queue knows it (a typo, or past retention): waiting
					// would never end.
					if !unknown[id] {
						fmt.Fprintf(w, "results --wait: task %q is not in any queue; not waiting for it\n", id)
						unknown[id] = true
					}
					done++
				}
			}
		} else {
			for _, q := range queues {
				info, err := insp.GetQueueInfo(q)
				if err != nil {
					continue
				}
				done += info.Completed + info.Archived
				total += info.Completed + info.Archived + info.Pending + info.Active + info.Scheduled + info.Retry
			}
		}
		line := progressBar(done, total)
		if done < total {
			if n := pauseNote(); n != "" {
				line += ", " + n
			}
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		if done >= total {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d finished: %w", done, total, ctx.Err())
		case <-t.C:
		}
	}
}

func progressBar(done, total int) string {
	const width = 30
	filled := width
	if total > 0 {
		filled = width * done / total
	}
	return fmt.Sprintf("[%s%s] %d/%d finished", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
}
