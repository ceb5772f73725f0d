package tasks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/tasks"
)

// A producer enqueues prompts, waits for one, and lists every result of the
// queue. The worker here is a stand-in for `promptq worker`: it answers
// without calling a provider, storing its Result the way the real one does.
func Example() {
	mr, err := miniredis.Run() // an in-memory Redis for the example
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	redisOpt := asynq.RedisClientOpt{Addr: mr.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Enqueue. The id makes a second Enqueue of the same prompt a no-op.
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	enq := &tasks.Enqueuer{Client: client}
	hello := &tasks.Payload{ID: "hello-1", Model: "gpt-4o-mini", Input: tasks.Input{Text: "Say hello."}, Queue: "example"}
	out, err := enq.Enqueue(ctx, hello)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued:", out.TaskID, "on", out.Queue)
	again, err := enq.Enqueue(ctx, hello)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued again, duplicate:", again.Duplicate)
	_, err = enq.Enqueue(ctx, &tasks.Payload{ID: "hello-2", Model: "gpt-9", Input: tasks.Input{Text: "Say hello."}, Queue: "example"})
	if err != nil {
		log.Fatal(err)
	}

	insp := asynq.NewInspector(redisOpt)
	defer insp.Close()
	_, err = tasks.GetResult(ctx, insp, out.Queue, out.TaskID)
	fmt.Println("before a worker runs:", err)

	// The stand-in worker.
	srv := asynq.NewServer(redisOpt, asynq.Config{
		Queues: map[string]int{"example": 1}, Concurrency: 1,
		TaskCheckInterval: 50 * time.Millisecond, LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypePrompt, func(ctx context.Context, t *asynq.Task) error {
		p, err := tasks.ParsePayload(t.Payload(), 0)
		if err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		r := tasks.Result{OutputText: "Hello!", Usage: tasks.Usage{InputTokens: 3, OutputTokens: 2, TotalTokens: 5}}
		if p.Model != "gpt-4o-mini" {
			r = tasks.Result{Error: fmt.Sprintf("model %q does not exist", p.Model), ErrorKind: "invalid"}
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := t.ResultWriter().Write(b); err != nil {
			return err
		}
		if r.Error != "" {
			return fmt.Errorf("%s: %w", r.Error, asynq.SkipRetry) // archived: no retry
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()

	// Wait for one task, then list the queue's finished tasks.
	res, err := tasks.Wait(ctx, insp, out.Queue, out.TaskID, 20*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s %q, %d tokens\n", res.ID, res.Status, res.OutputText, res.Usage.TotalTokens)
	if _, err := tasks.Wait(ctx, insp, "example", "hello-2", 20*time.Millisecond); err != nil {
		log.Fatal(err)
	}
	err = tasks.ListResults(ctx, insp, "example", func(r tasks.Result) error {
		fmt.Printf("listed %s: %s, model %s, error %q\n", r.ID, r.Status, r.Model, r.Error)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// enqueued: hello-1 on example
	// enqueued again, duplicate: true
	// before a worker runs: tasks: task not finished
	// hello-1: completed "Hello!", 5 tokens
	// listed hello-1: completed, model gpt-4o-mini, error ""
	// listed hello-2: archived, model gpt-9, error "model \"gpt-9\" does not exist"
}
