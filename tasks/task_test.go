package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/tasks"
)

func TestEnqueuer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	pending := func(t *testing.T, e *env) []*asynq.TaskInfo {
		t.Helper()
		infos, err := e.insp.ListPendingTasks(e.queue)
		if err != nil {
			t.Fatal(err)
		}
		return infos
	}

	t.Run("an id becomes the task id, with the default options", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		p := e.payload("a-1", "hello")
		before := time.Now().Add(-time.Second)
		out, err := e.enq.Enqueue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if want := (tasks.Outcome{TaskID: "a-1", Queue: e.queue}); out != want {
			t.Fatalf("outcome = %+v, want %+v", out, want)
		}
		info, err := e.insp.GetTaskInfo(e.queue, "a-1")
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != tasks.TypePrompt || info.State != asynq.TaskStatePending ||
			info.MaxRetry != tasks.MaxRetryDefault || info.Retention != tasks.RetentionDefault {
			t.Fatalf("task = type %q state %v max retry %d retention %v", info.Type, info.State, info.MaxRetry, info.Retention)
		}
		var got tasks.Payload
		if err := json.Unmarshal(info.Payload, &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != "a-1" || got.Model != p.Model || got.Input.Text != "hello" || got.Queue != e.queue {
			t.Fatalf("stored payload = %+v", got)
		}
		if got.EnqueuedAt == nil || got.EnqueuedAt.Before(before) || got.EnqueuedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("stored enqueued_at = %v, want about now", got.EnqueuedAt)
		}
		if p.EnqueuedAt != nil {
			t.Fatal("Enqueue changed the caller's payload")
		}
	})

	t.Run("the same id again is a duplicate, not an error", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enqueue(t, e.payload("dup-1", "first"))
		out, err := e.enq.Enqueue(ctx, e.payload("dup-1", "second"))
		if err != nil {
			t.Fatal(err)
		}
		if want := (tasks.Outcome{TaskID: "dup-1", Queue: e.queue, Duplicate: true}); out != want {
			t.Fatalf("outcome = %+v, want %+v", out, want)
		}
		infos := pending(t, e)
		if len(infos) != 1 {
			t.Fatalf("%d pending tasks, want 1", len(infos))
		}
		var got tasks.Payload
		if err := json.Unmarshal(infos[0].Payload, &got); err != nil || got.Input.Text != "first" {
			t.Fatalf("the duplicate replaced the task: %+v, %v", got, err)
		}
	})

	t.Run("without an id every task is new", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var ids []string
		for range 2 {
			out, err := e.enq.Enqueue(ctx, e.payload("", "hello"))
			if err != nil {
				t.Fatal(err)
			}
			if out.TaskID == "" || out.Duplicate || out.Queue != e.queue {
				t.Fatalf("outcome = %+v", out)
			}
			ids = append(ids, out.TaskID)
		}
		if ids[0] == ids[1] {
			t.Fatalf("both tasks got id %q", ids[0])
		}
		if n := len(pending(t, e)); n != 2 {
			t.Fatalf("%d pending tasks, want 2", n)
		}
	})

	t.Run("an invalid payload is a FieldError and adds nothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enqueue(t, e.payload("ok-1", "hello"))
		bad := e.payload("bad-1", "hello")
		bad.Model = ""
		out, err := e.enq.Enqueue(ctx, bad)
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != "model" {
			t.Fatalf("err = %v, want a FieldError on model", err)
		}
		if out != (tasks.Outcome{}) {
			t.Fatalf("outcome = %+v, want none", out)
		}
		if n := len(pending(t, e)); n != 1 {
			t.Fatalf("%d pending tasks, want 1", n)
		}
	})

	t.Run("options reach the task", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.enq.Opts = tasks.Options{Retention: 2 * time.Hour, MaxRetry: 3, Timeout: 90 * time.Second}
		e.enqueue(t, e.payload("opt-1", "hello"))
		e.enq.Opts = tasks.Options{MaxRetry: -1}
		e.enqueue(t, e.payload("opt-2", "hello"))

		info, err := e.insp.GetTaskInfo(e.queue, "opt-1")
		if err != nil {
			t.Fatal(err)
		}
		if info.Retention != 2*time.Hour || info.MaxRetry != 3 || info.Timeout != 90*time.Second {
			t.Fatalf("opt-1: retention %v max retry %d timeout %v", info.Retention, info.MaxRetry, info.Timeout)
		}
		info, err = e.insp.GetTaskInfo(e.queue, "opt-2")
		if err != nil {
			t.Fatal(err)
		}
		if info.MaxRetry != 0 || info.Retention != tasks.RetentionDefault {
			t.Fatalf("opt-2 (MaxRetry -1): max retry %d retention %v, want 0 and the default", info.MaxRetry, info.Retention)
		}
	})
}
