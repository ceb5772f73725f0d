package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/tasks"
)

func TestEnqueueOne(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", e.task("one-1"), "", http.StatusOK, &resp)
	if len(resp.Tasks) != 1 {
		t.Fatalf("tasks = %+v, want one", resp.Tasks)
	}
	got := resp.Tasks[0]
	if got.Status != StatusEnqueued || got.ID != "one-1" || got.TaskID != "one-1" || got.Queue != e.queue {
		t.Fatalf("outcome = %+v", got)
	}
	info, err := e.srv.insp.GetTaskInfo(e.queue, "one-1")
	if err != nil {
		t.Fatalf("task not in asynq: %v", err)
	}
	if info.Type != tasks.TypePrompt || info.State != asynq.TaskStatePending {
		t.Fatalf("asynq task = %s %v", info.Type, info.State)
	}

	var st TaskState
	e.doJSON(t, "GET", "/v1/tasks/one-1?queue="+e.queue, "", "", http.StatusOK, &st)
	if st.State != "pending" || st.ID != "one-1" || st.Queue != e.queue || st.Result != nil {
		t.Fatalf("state = %+v", st)
	}
}

func TestEnqueueBatchAndDuplicates(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	batch := "[" + e.task("b-1") + "," + e.task("b-2") + "," + e.task("") + "]"
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", batch, "", http.StatusOK, &resp)
	if len(resp.Tasks) != 3 {
		t.Fatalf("tasks = %+v", resp.Tasks)
	}
	for i, o := range resp.Tasks {
		if o.Index != i || o.Status != StatusEnqueued || o.TaskID == "" {
			t.Fatalf("task %d: %+v", i, o)
		}
	}
	info, err := e.srv.insp.GetQueueInfo(e.queue)
	if err != nil || info.Pending != 3 {
		t.Fatalf("queue info %+v, %v; want 3 pending", info, err)
	}

	// The same ids again: nothing is added, and that is not an error.
	e.doJSON(t, "POST", "/v1/tasks", "["+e.task("b-1")+","+e.task("b-2")+"]", "", http.StatusOK, &resp)
	for _, o := range resp.Tasks {
		if o.Status != StatusDuplicate {
			t.Fatalf("resent task: %+v, want duplicate", o)
		}
	}
	if info, _ := e.srv.insp.GetQueueInfo(e.queue); info.Pending != 3 {
		t.Fatalf("pending = %d after duplicates, want 3", info.Pending)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantField string // of the response and of the invalid task
	}{
		{"missing model", `{"id":"x-1","input":"hi"}`, http.StatusBadRequest, "model"},
		{"empty input", `{"model":"m","input":"  "}`, http.StatusBadRequest, "input"},
		{"unknown field", `{"model":"m","input":"hi","temprature":1}`, http.StatusBadRequest, "payload"},
		{"bad role", `{"model":"m","input":[{"role":"robot","content":"hi"}]}`, http.StatusBadRequest, "input[0].role"},
		{"bad queue", `{"model":"m","input":"hi","queue":"a b"}`, http.StatusBadRequest, "queue"},
		{"mixed batch", "[" + e.task("mix-1") + `,{"id":"mix-2","model":"m","input":"hi","max_output_tokens":-5}]`, http.StatusMultiStatus, "max_output_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp EnqueueResponse
			e.doJSON(t, "POST", "/v1/tasks", tt.body, "", tt.wantCode, &resp)
			bad := resp.Tasks[len(resp.Tasks)-1]
			if bad.Status != StatusInvalid || bad.Field != tt.wantField || bad.Error == "" {
				t.Fatalf("invalid task = %+v, want field %q", bad, tt.wantField)
			}
			if tt.wantCode == http.StatusBadRequest && (resp.Field != tt.wantField || resp.Error == "") {
				t.Fatalf("response error %q field %q, want field %q", resp.Error, resp.Field, tt.wantField)
			}
			if tt.wantCode == http.StatusMultiStatus && resp.Tasks[0].Status != StatusEnqueued {
				t.Fatalf("valid task of the batch = %+v", resp.Tasks[0])
			}
		})
	}
	// The invalid task's id is echoed so a client can match it.
	var resp EnqueueResponse
	e.doJSON(t, "POST", "/v1/tasks", `[{"id":"echo-1","input":"hi"}]`, "", http.StatusBadRequest, &resp)
	if resp.Tasks[0].ID != "echo-1" {
		t.Fatalf("invalid task id = %q", resp.Tasks[0].ID)
	}

	for _, body := range []string{"", "[]", "[{", `"text"`} {
		var ae apiError
		e.doJSON(t, "POST", "/v1/tasks", body, "", http.StatusBadRequest, &ae)
		if ae.Error == "" || ae.Field == "" {
			t.Fatalf("body %q: error %+v", body, ae)
		}
	}
}

func TestGetTaskUnknown(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	var ae apiError
	e.doJSON(t, "GET", "/v1/tasks/nope?queue="+e.queue, "", "", http.StatusNotFound, &ae)
	if ae.Field != "id" {
		t.Fatalf("error = %+v", ae)
	}
	e.doJSON(t, "POST", "/v1/tasks", e.task("known-1"), "", http.StatusOK, nil)
	e.doJSON(t, "GET", "/v1/tasks/nope?queue="+e.queue, "", "", http.StatusNotFound, &ae)
}

// A task run by a real asynq server reads back as completed with the result
// its handler wrote.
func TestGetTaskResult(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	e.doJSON(t, "POST", "/v1/tasks", e.task("res-1"), "", http.StatusOK, nil)

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
		e.doJSON(t, "GET", "/v1/tasks/res-1?queue="+e.queue, "", "", http.StatusOK, &st)
	}
	if st.Result == nil || st.Result.OutputText != "hi there" || st.Result.Usage.TotalTokens != 5 || st.Result.Status != "completed" {
		t.Fatalf("result = %+v", st.Result)
	}
}
