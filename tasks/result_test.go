package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/tasks"
)

// TestFinishedResults runs one queue's tasks to every finished state a
// worker or an operator leaves, then reads them back.
func TestFinishedResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.enqueue(t,
		e.payload("done-1", inputOK), e.payload("done-2", inputOK),
		e.payload("invalid-1", inputInvalid), e.payload("boom-1", inputBoom),
		e.payload("op-1", "archived by an operator before any worker ran"),
	)
	if err := e.insp.ArchiveTask(e.queue, "op-1"); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t)
	e.waitFinished(t, "done-1", "done-2", "invalid-1", "boom-1")

	get := func(t *testing.T, id string) tasks.Result {
		t.Helper()
		r, err := tasks.GetResult(ctx, e.insp, e.queue, id)
		if err != nil {
			t.Fatalf("GetResult(%s): %v", id, err)
		}
		if r.ID != id || r.TaskID != id || r.Queue != e.queue || r.Attempts != 1 {
			t.Fatalf("GetResult(%s): id %q task id %q queue %q attempts %d", id, r.ID, r.TaskID, r.Queue, r.Attempts)
		}
		return r
	}

	t.Run("GetResult of a completed task", func(t *testing.T) {
		r := get(t, "done-1")
		if r.Status != tasks.StatusCompleted || r.OutputText != "answer to done-1" || r.Error != "" ||
			r.Usage != (tasks.Usage{InputTokens: 3, OutputTokens: 2, TotalTokens: 5}) {
			t.Fatalf("result = %+v", r)
		}
		// The worker's result names no model or metadata: they come from the payload.
		if r.Model != "m-test" || r.Metadata["source"] != "test" {
			t.Fatalf("model %q metadata %v, want the payload's", r.Model, r.Metadata)
		}
	})

	t.Run("GetResult of a task archived with a failure result", func(t *testing.T) {
		r := get(t, "invalid-1")
		if r.Status != tasks.StatusArchived || r.Error != "rejected invalid-1" || r.ErrorKind != "invalid" || r.OutputText != "" {
			t.Fatalf("result = %+v", r)
		}
	})

	t.Run("GetResult of a task archived without a result", func(t *testing.T) {
		r := get(t, "boom-1")
		if r.Status != tasks.StatusArchived || r.Error != "boom boom-1: "+asynq.SkipRetry.Error() {
			t.Fatalf("result = %+v, want asynq's last error", r)
		}
	})

	t.Run("GetResult of a task archived by an operator", func(t *testing.T) {
		r := get(t, "op-1")
		if r.Status != tasks.StatusArchived || r.Error != "" || r.OutputText != "" {
			t.Fatalf("result = %+v", r)
		}
	})

	t.Run("Wait returns a finished task at once", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := tasks.Wait(ctx, e.insp, e.queue, "invalid-1", time.Hour)
		if err != nil || r.Status != tasks.StatusArchived || r.ID != "invalid-1" {
			t.Fatalf("Wait = %+v, %v", r, err)
		}
	})

	t.Run("ListResults lists completed tasks, then archived ones", func(t *testing.T) {
		var got []string
		err := tasks.ListResults(ctx, e.insp, e.queue, func(r tasks.Result) error {
			if r.Queue != e.queue || r.TaskID != r.ID {
				t.Errorf("listed %+v", r)
			}
			got = append(got, r.Status+" "+r.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{ // position class: completed first
			"completed done-1": 0, "completed done-2": 0,
			"archived invalid-1": 1, "archived boom-1": 1, "archived op-1": 1,
		}
		if len(got) != len(want) {
			t.Fatalf("listed %q, want %d results", got, len(want))
		}
		last := 0
		for _, g := range got {
			class, ok := want[g]
			if !ok || class < last {
				t.Fatalf("listed %q: unexpected or out of order at %q", got, g)
			}
			delete(want, g)
			last = class
		}
	})

	t.Run("ListResults stops at fn's error and returns it", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := tasks.ListResults(ctx, e.insp, e.queue, func(tasks.Result) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("err = %v after %d calls, want stop after 1", err, calls)
		}
	})

	t.Run("ListResults returns the context's error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		err := tasks.ListResults(ctx, e.insp, e.queue, func(tasks.Result) error {
			t.Fatal("fn called after the context was cancelled")
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestGetResultUnfinished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.enqueue(t, e.payload("wait-1", inputOK))

	r, err := tasks.GetResult(ctx, e.insp, e.queue, "wait-1")
	if !errors.Is(err, tasks.ErrNotFinished) {
		t.Fatalf("err = %v, want ErrNotFinished", err)
	}
	if r.Status != "pending" || r.ID != "wait-1" || r.TaskID != "wait-1" || r.Queue != e.queue || r.Model != "m-test" {
		t.Fatalf("result of a pending task = %+v", r)
	}

	_, err = tasks.GetResult(ctx, e.insp, e.queue, "no-such-task")
	if !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("unknown id: err = %v, want asynq.ErrTaskNotFound", err)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("returns the result once a worker finishes the task", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enqueue(t, e.payload("w-1", inputOK))
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		type waited struct {
			r   tasks.Result
			err error
		}
		done := make(chan waited, 1)
		go func() {
			r, err := tasks.Wait(ctx, e.insp, e.queue, "w-1", 10*time.Millisecond)
			done <- waited{r, err}
		}()
		e.startWorker(t) // only now can the task finish
		w := <-done
		if w.err != nil || w.r.Status != tasks.StatusCompleted || w.r.OutputText != "answer to w-1" {
			t.Fatalf("Wait = %+v, %v", w.r, w.err)
		}
	})

	t.Run("gives up with the context, reporting the task's state", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enqueue(t, e.payload("w-2", inputOK)) // no worker: it stays pending
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		r, err := tasks.Wait(ctx, e.insp, e.queue, "w-2", 10*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) || r.Status != "pending" || r.ID != "w-2" {
			t.Fatalf("Wait = %+v, %v; want the pending task and DeadlineExceeded", r, err)
		}
	})

	t.Run("an unknown task is an error at once, not a wait", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enqueue(t, e.payload("w-3", inputOK)) // the queue exists
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := tasks.Wait(ctx, e.insp, e.queue, "no-such-task", time.Millisecond)
		if !errors.Is(err, asynq.ErrTaskNotFound) {
			t.Fatalf("err = %v, want asynq.ErrTaskNotFound", err)
		}
	})
}

func TestListResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("an unknown queue has no results", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		err := tasks.ListResults(ctx, e.insp, "q-never-used-"+testutil.Name(t), func(r tasks.Result) error {
			t.Fatalf("listed %+v", r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pages through more results than one page holds", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		const n = 501 // ListResults reads 500 a page
		for i := range n {
			e.enqueue(t, e.payload(fmt.Sprintf("p-%03d", i), "hello"))
		}
		if _, err := e.insp.ArchiveAllPendingTasks(e.queue); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		err := tasks.ListResults(ctx, e.insp, e.queue, func(r tasks.Result) error {
			if seen[r.ID] {
				t.Errorf("%s listed twice", r.ID)
			}
			seen[r.ID] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Fatalf("listed %d results, want %d", len(seen), n)
		}
	})
}
