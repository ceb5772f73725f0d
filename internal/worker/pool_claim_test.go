package worker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/answer"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

// TestPoolShortPauseStaysInTier: a 429 with a precise 51 ms wait on tier 1
// does not send the task to an idle tier 2: the tier waits it out.
func TestPoolShortPauseStaysInTier(t *testing.T) {
	var calls atomic.Int64
	first := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, rateLimit51ms)
			return
		}
		io.WriteString(w, chatOK)
	})
	f := setupPool(t, []int{1, 2}, map[int]http.Handler{0: first})
	b := f.names[1]
	if err := f.h.ProcessTask(context.Background(), task(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`)); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	if n := f.fakes[b].Stats().Requests; n != 0 {
		t.Errorf("tier 2 got %d requests for a 51ms pause of tier 1; want none (spill only when the better tier cannot admit within the window)", n)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("tier 1 got %d calls, want 2 (the 429, then the task)", n)
	}
}

// TestInlineRetryClaim: the inline retry after a short 429 finds no claim
// of its own left (claims on, through a real asynq server): before, it took
// its own claim for another worker's call and went back to asynq for ~11 s.
func TestInlineRetryClaim(t *testing.T) {
	var calls atomic.Int64
	srv := newHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, rateLimit51ms)
			return
		}
		io.WriteString(w, chatOK)
	}))
	h, _, acct := fixtureHandler(t, srv)
	r := testutil.NewRedis(t)
	st, err := answer.NewStore(r.Client, answer.Config{Account: acct})
	if err != nil {
		t.Fatal(err)
	}
	h.answers = st
	opt, err := asynq.ParseRedisURI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	queue := "rq-" + testutil.Name(t)
	s := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: map[string]int{queue: 1},
		IsFailure: func(err error) bool { return false }, RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Second }})
	mux := asynq.NewServeMux()
	var lastErr atomic.Value
	mux.HandleFunc(tasks.TypePrompt, func(ctx context.Context, tk *asynq.Task) error {
		err := h.ProcessTask(ctx, tk)
		if err != nil {
			lastErr.Store(err.Error())
		}
		return err
	})
	if err := s.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	c := asynq.NewClient(opt)
	defer c.Close()
	if _, err := c.Enqueue(asynq.NewTask(tasks.TypePrompt, []byte(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`)),
		asynq.Queue(queue), asynq.TaskID("t1-"+queue), asynq.Retention(time.Minute)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		info, err := insp.GetTaskInfo(queue, "t1-"+queue)
		if err == nil && info.State == asynq.TaskStateCompleted {
			if lastErr.Load() != nil {
				t.Errorf("the inline retry went back to asynq: %v", lastErr.Load())
			}
			_ = insp.DeleteQueue(queue, true)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not completed; calls %d, last error %v", calls.Load(), lastErr.Load())
}

func newHTTP(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPoolUnservedModel: a task for a model no account of the pool serves
// fails at once with a reason, instead of waiting forever.
func TestPoolUnservedModel(t *testing.T) {
	f := setupPool(t, []int{1, 1}, nil)
	for _, n := range f.names {
		f.h.byName[n].models = map[string]bool{"only-this": true}
	}
	err := f.h.ProcessTask(context.Background(), task(`{"model":"other","input":"hello","max_output_tokens":32}`))
	var be *backoff.Error
	if !errors.Is(err, asynq.SkipRetry) || !errors.As(err, &be) || be.Kind != backoff.KindInvalid || !strings.Contains(be.Message, `model "other"`) {
		t.Errorf("a model no account serves: %v; want a permanent invalid naming the model", err)
	}
}
