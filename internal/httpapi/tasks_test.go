package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/tasks"
)

func TestEnqueueOne(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var got TaskOutcome
	e.doJSON(t, "POST", "/v1/tasks", e.task("one-1"), "", http.StatusAccepted, &got)
	if got.Status != StatusEnqueued || got.ID != "one-1" || got.TaskID != "one-1" || got.Queue != e.queue ||
		got.Location != "/v1/tasks/one-1?queue="+e.queue {
		t.Fatalf("outcome = %+v", got)
	}
	info, err := e.srv.insp.GetTaskInfo(e.queue, "one-1")
	if err != nil {
		t.Fatalf("task not in asynq: %v", err)
	}
	if info.Type != tasks.TypePrompt || info.State != asynq.TaskStatePending {
		t.Fatalf("asynq task = %s %v", info.Type, info.State)
	}

	// Found without naming the queue.
	var st TaskState
	e.doJSON(t, "GET", "/v1/tasks/one-1", "", "", http.StatusOK, &st)
	if st.State != "pending" || st.ID != "one-1" || st.Queue != e.queue || st.Result != nil {
		t.Fatalf("state = %+v", st)
	}
	e.doJSON(t, "GET", got.Location, "", "", http.StatusOK, &st)

	// The same id again: 409 with the existing task's location.
	req, _ := http.NewRequest("POST", e.ts.URL+"/v1/tasks", strings.NewReader(e.task("one-1")))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var p Problem
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusConflict || p.Code != CodeDuplicateTask ||
		p.Location != got.Location || resp.Header.Get("Location") != got.Location ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("duplicate: %d %s %+v (%v)", resp.StatusCode, resp.Header, p, err)
	}
	if info, _ := e.srv.insp.GetQueueInfo(e.queue); info.Pending != 1 {
		t.Fatalf("pending = %d after the duplicate, want 1", info.Pending)
	}
}

func TestEnqueueBatch(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	batch := "[" + e.task("b-1") + "," + e.task("b-2") + "," + e.task("") + "]"
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", batch, "", http.StatusAccepted, &resp)
	if len(resp.Tasks) != 3 {
		t.Fatalf("tasks = %+v", resp.Tasks)
	}
	for i, o := range resp.Tasks {
		if o.Index != i || o.Status != StatusEnqueued || o.TaskID == "" || o.Problem != nil {
			t.Fatalf("task %d: %+v", i, o)
		}
	}
	// Resent with a new one: 207, each duplicate with its 409 problem.
	e.doJSON(t, "POST", "/v1/tasks", "["+e.task("b-1")+","+e.task("b-3")+"]", "", http.StatusMultiStatus, &resp)
	if o := resp.Tasks[0]; o.Status != StatusDuplicate || o.Problem == nil || o.Problem.Status != http.StatusConflict ||
		o.Problem.Code != CodeDuplicateTask || o.Location == "" {
		t.Fatalf("resent task: %+v", o)
	}
	if resp.Tasks[1].Status != StatusEnqueued {
		t.Fatalf("new task: %+v", resp.Tasks[1])
	}
	if info, _ := e.srv.insp.GetQueueInfo(e.queue); info.Pending != 4 {
		t.Fatalf("pending = %d, want 4", info.Pending)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		name, body, code, field string
	}{
		{"missing model", `{"id":"x-1","input":"hi"}`, CodeInvalidField, "model"},
		{"empty input", `{"model":"m","input":"  "}`, CodeInvalidField, "input"},
		{"unknown field", `{"model":"m","input":"hi","temprature":1}`, CodeInvalidJSON, "payload"},
		{"bad role", `{"model":"m","input":[{"role":"robot","content":"hi"}]}`, CodeInvalidField, "input[0].role"},
		{"bad queue", `{"model":"m","input":"hi","queue":"a b"}`, CodeInvalidField, "queue"},
		{"max_output_tokens 0", `{"model":"m","input":"hi","max_output_tokens":0}`, CodeInvalidField, "max_output_tokens"},
		{"max_output_tokens over", `{"model":"m","input":"hi","max_output_tokens":1000001}`, CodeInvalidField, "max_output_tokens"},
		{"max_output_tokens string", `{"model":"m","input":"hi","max_output_tokens":"9"}`, CodeInvalidJSON, "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.problem(t, "POST", "/v1/tasks", tt.body, "", http.StatusBadRequest, tt.code)
			if p.Field != tt.field || p.Detail == "" || strings.Contains(p.Detail, "int64") {
				t.Fatalf("problem = %+v, want field %q and no Go type names", p, tt.field)
			}
		})
	}
	// 1 and 1,000,000 are the range's ends.
	for i, n := range []int{1, 1_000_000} {
		body := fmt.Sprintf(`{"model":"m","input":"hi","queue":%q,"max_output_tokens":%d}`, e.queue, n)
		if code, b := e.do(t, "POST", "/v1/tasks", body, ""); code != http.StatusAccepted {
			t.Fatalf("max_output_tokens %d (#%d): %d %s", n, i, code, b)
		}
	}
	// A mixed batch: 207, the invalid task with its problem and its id.
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", "["+e.task("mix-1")+`,{"id":"mix-2","model":"m","input":"hi","max_output_tokens":-5}]`, "", http.StatusMultiStatus, &resp)
	if bad := resp.Tasks[1]; bad.Status != StatusInvalid || bad.ID != "mix-2" || bad.Problem == nil || bad.Problem.Field != "max_output_tokens" {
		t.Fatalf("invalid task = %+v", bad)
	}
	for _, body := range []string{"", "[]", "[{", `"text"`} {
		if p := e.problem(t, "POST", "/v1/tasks", body, "", http.StatusBadRequest, CodeInvalidJSON); p.Detail == "" {
			t.Fatalf("body %q: problem %+v", body, p)
		}
	}
}

// A task over the 1 MiB task limit (under the body limit) is 413.
func TestEnqueueTaskTooLarge(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	big := fmt.Sprintf(`{"model":"m","input":%q,"queue":%q}`, strings.Repeat("a", tasks.MaxPayloadBytesDefault), e.queue)
	if p := e.problem(t, "POST", "/v1/tasks", big, "", http.StatusRequestEntityTooLarge, CodeTaskTooLarge); p.Field != "payload" {
		t.Fatalf("problem = %+v", p)
	}
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", "["+e.task("ok-1")+","+big+"]", "", http.StatusMultiStatus, &resp)
	if o := resp.Tasks[1]; o.Problem == nil || o.Problem.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big task of a batch = %+v", o)
	}
}

func TestGetTaskAcrossQueues(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	p := e.problem(t, "GET", "/v1/tasks/nope", "", "", http.StatusNotFound, CodeTaskNotFound)
	if p.Field != "id" {
		t.Fatalf("problem = %+v", p)
	}
	other := e.queue + "-b"
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, e.r.Client, other) })
	body := fmt.Sprintf(`{"id":"x-1","model":"m","input":"hi","queue":%q}`, other)
	e.doJSON(t, "POST", "/v1/tasks", body, "", http.StatusAccepted, nil)
	var st TaskState
	e.doJSON(t, "GET", "/v1/tasks/x-1", "", "", http.StatusOK, &st)
	if st.Queue != other {
		t.Fatalf("found in %q, want %q", st.Queue, other)
	}
	// The same id in two queues: name one.
	e.doJSON(t, "POST", "/v1/tasks", e.task("x-1"), "", http.StatusAccepted, nil)
	e.problem(t, "GET", "/v1/tasks/x-1", "", "", http.StatusConflict, CodeAmbiguousTask)
	e.doJSON(t, "GET", "/v1/tasks/x-1?queue="+e.queue, "", "", http.StatusOK, &st)
	if st.Queue != e.queue {
		t.Fatalf("?queue= gave %q", st.Queue)
	}
}

// A task run by a real asynq server reads back as completed with the result
// its handler wrote.
func TestGetTaskResult(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.doJSON(t, "POST", "/v1/tasks", e.task("res-1"), "", http.StatusAccepted, nil)

	srv := asynq.NewServer(e.opt, asynq.Config{Queues: map[string]int{e.queue: 1}, Concurrency: 1,
		LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypePrompt, func(ctx context.Context, task *asynq.Task) error {
		b, _ := json.Marshal(tasks.Result{OutputText: "hi there", Usage: tasks.Usage{InputTokens: 3, OutputTokens: 2, TotalTokens: 5}})
		_, err := task.ResultWriter().Write(b)
		return err
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()

	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var st TaskState
	for st.State != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("task did not complete; last state %+v", st)
		}
		<-tick.C
		e.doJSON(t, "GET", "/v1/tasks/res-1", "", "", http.StatusOK, &st)
	}
	if st.Result == nil || st.Result.OutputText != "hi there" || st.Result.Usage.TotalTokens != 5 || st.Result.Status != "completed" {
		t.Fatalf("result = %+v", st.Result)
	}
}
