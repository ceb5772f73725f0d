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
	"sync"
	"sync/atomic"
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

// waitPoll is how often --wait looks at tasks and queues.
const waitPoll = 500 * time.Millisecond

// waitParallel is how many --ids tasks.Wait polls at once.
const waitParallel = 8

// waitFinished blocks until every given id (or every task of queues) is
// completed or archived, printing a progress bar to w, with what holds the
// queues (pauseNote: "paused until T (reason)", "" when nothing does).
func waitFinished(ctx context.Context, insp *asynq.Inspector, queues []string, ids []string, pauseNote func() string, w io.Writer) error {
	p := &progressLine{w: w, note: pauseNote}
	if len(ids) > 0 {
		return waitIDs(ctx, insp, queues, ids, p)
	}
	return waitQueues(ctx, insp, queues, p)
}

// progressLine prints the progress of --wait, one line each time it changes.
type progressLine struct {
	mu   sync.Mutex // writes to w come from several goroutines
	w    io.Writer
	note func() string
	last string
}

func (p *progressLine) show(done, total int) {
	line := progressBar(done, total)
	if done < total {
		if n := p.note(); n != "" {
			line += ", " + n
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if line != p.last {
		fmt.Fprintln(p.w, line)
		p.last = line
	}
}

func (p *progressLine) printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, a...)
}

// waitQueues waits until queues hold no unfinished task.
func waitQueues(ctx context.Context, insp *asynq.Inspector, queues []string, p *progressLine) error {
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		done, total := 0, 0
		for _, q := range queues {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				continue
			}
			done += info.Completed + info.Archived
			total += info.Completed + info.Archived + info.Pending + info.Active + info.Scheduled + info.Retry
		}
		p.show(done, total)
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

// waitIDs waits for each id with tasks.Wait, waitParallel at a time, and
// refreshes the progress line every waitPoll.
func waitIDs(ctx context.Context, insp *asynq.Inspector, queues []string, ids []string, p *progressLine) error {
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		done    atomic.Int64
		todo    = make(chan string)
		allDone = make(chan struct{})
	)
	defer wg.Wait() // after cancel: no line is printed once waitIDs returns
	defer cancel()
	for range min(len(ids), waitParallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range todo {
				if waitID(ctx, insp, queues, id, p) == nil {
					done.Add(1)
				}
			}
		}()
	}
	go func() {
		defer close(todo)
		for _, id := range ids {
			select {
			case todo <- id:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(allDone) }()
	t := time.NewTicker(waitPoll)
	defer t.Stop()
	for {
		n := int(done.Load())
		p.show(n, len(ids))
		if n >= len(ids) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d finished: %w", n, len(ids), ctx.Err())
		case <-allDone:
		case <-t.C:
		}
	}
}

// waitID waits until the task id of one of queues is finished. A task no
// queue knows (a typo, or past retention) is reported and counts as
// finished: waiting for it would never end. It returns only ctx's error.
func waitID(ctx context.Context, insp *asynq.Inspector, queues []string, id string, p *progressLine) error {
	for i := 0; i < len(queues); {
		_, err := tasks.Wait(ctx, insp, queues[i], id, waitPoll)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			i++ // not in this queue
		default: // Redis unreachable for a moment: look again
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(waitPoll):
			}
		}
	}
	p.printf("results --wait: task %q is not in any queue; not waiting for it\n", id)
	return nil
}

func progressBar(done, total int) string {
	const width = 30
	filled := width
	if total > 0 {
		filled = width * done / total
	}
	return fmt.Sprintf("[%s%s] %d/%d finished", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total)
}
