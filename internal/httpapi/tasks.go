package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/tasks"
)

// Statuses of one task in a POST /v1/tasks response.
const (
	StatusEnqueued  = "enqueued"  // added to its queue
	StatusDuplicate = "duplicate" // a task with this id exists; nothing added
	StatusInvalid   = "invalid"   // rejected; error and field say why
	StatusFailed    = "failed"    // valid, but Redis refused it; retry later
)

// enqueueParallel is how many tasks of one batch are enqueued at once.
const enqueueParallel = 8

// TaskOutcome is one task of a POST /v1/tasks response, in request order.
type TaskOutcome struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	TaskID string `json:"task_id,omitempty"`
	Queue  string `json:"queue,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Field  string `json:"field,omitempty"`
}

// EnqueueResponse is the body of a POST /v1/tasks response. Error and Field
// repeat the first problem when no task was accepted.
type EnqueueResponse struct {
	Tasks []TaskOutcome `json:"tasks"`
	Error string        `json:"error,omitempty"`
	Field string        `json:"field,omitempty"`
}

// handleEnqueue is POST /v1/tasks: the body is one task object or an array
// of them, each the JSON of a `promptq enqueue` line. It answers 200 when
// every task was accepted (enqueued or duplicate), 400 when none was valid,
// 503 when valid ones all failed to enqueue, and 207 for a mix.
func (s *Server) handleEnqueue(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	var raws []json.RawMessage
	switch {
	case len(data) == 0:
		writeError(w, http.StatusBadRequest, "empty body: send a task object or an array of them", "body")
		return
	case data[0] == '[':
		if err := json.Unmarshal(data, &raws); err != nil {
			writeError(w, http.StatusBadRequest, "invalid JSON array: "+err.Error(), "body")
			return
		}
		if len(raws) == 0 {
			writeError(w, http.StatusBadRequest, "empty array: no task to enqueue", "body")
			return
		}
	default:
		raws = []json.RawMessage{data}
	}

	out := make([]TaskOutcome, len(raws))
	valid := make([]*tasks.Payload, len(raws))
	for i, raw := range raws {
		out[i] = TaskOutcome{Index: i}
		p, err := tasks.ParsePayload(raw, tasks.MaxPayloadBytesDefault)
		if err != nil {
			out[i].Status, out[i].Error, out[i].Field = StatusInvalid, err.Error(), "payload"
			var fe *tasks.FieldError
			if errors.As(err, &fe) {
				out[i].Error, out[i].Field = fe.Msg, fe.Field
			}
			out[i].ID = idOf(raw)
			continue
		}
		valid[i] = p
	}
	s.enqueueAll(r, valid, out)

	var accepted, invalid, failed int
	for _, o := range out {
		switch o.Status {
		case StatusEnqueued, StatusDuplicate:
			accepted++
		case StatusInvalid:
			invalid++
		default:
			failed++
		}
	}
	resp := EnqueueResponse{Tasks: out}
	code := http.StatusOK
	switch {
	case accepted == len(out):
	case accepted > 0:
		code = http.StatusMultiStatus
	case failed > 0:
		code = http.StatusServiceUnavailable
	default:
		code = http.StatusBadRequest
	}
	if accepted == 0 {
		resp.Error, resp.Field = firstProblem(out)
	}
	s.log.Info().Int("tasks", len(out)).Int("accepted", accepted).Int("invalid", invalid).
		Int("failed", failed).Msg("enqueue")
	writeJSON(w, code, resp)
}

// enqueueAll enqueues the non-nil payloads, a few at a time, filling out.
func (s *Server) enqueueAll(r *http.Request, valid []*tasks.Payload, out []TaskOutcome) {
	idx := make(chan int)
	var wg sync.WaitGroup
	for range min(enqueueParallel, len(valid)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				p := valid[i]
				o := &out[i]
				o.ID, o.Queue = p.ID, p.QueueName()
				res, err := s.enq.Enqueue(r.Context(), p)
				var fe *tasks.FieldError
				switch {
				case errors.As(err, &fe):
					o.Status, o.Error, o.Field = StatusInvalid, fe.Msg, fe.Field
				case err != nil:
					o.Status, o.Error = StatusFailed, err.Error()
					s.log.Error().Err(err).Str("queue", o.Queue).Msg("enqueue failed")
				case res.Duplicate:
					o.Status, o.TaskID = StatusDuplicate, res.TaskID
				default:
					o.Status, o.TaskID, o.Queue = StatusEnqueued, res.TaskID, res.Queue
				}
			}
		}()
	}
	for i, p := range valid {
		if p != nil {
			idx <- i
		}
	}
	close(idx)
	wg.Wait()
}

// idOf returns the "id" of an invalid task when it can be read, so the
// client can tell which one it was.
func idOf(raw json.RawMessage) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if s, ok := v.ID.(string); ok && len(s) <= tasks.MaxIDLength {
		return s
	}
	return ""
}

func firstProblem(out []TaskOutcome) (msg, field string) {
	for _, o := range out {
		if o.Error != "" {
			if len(out) > 1 {
				return fmt.Sprintf("task %d: %s", o.Index, o.Error), o.Field
			}
			return o.Error, o.Field
		}
	}
	return "", ""
}

// TaskState is the body of a GET /v1/tasks/{id} response.
type TaskState struct {
	ID     string `json:"id"`
	TaskID string `json:"task_id"`
	Queue  string `json:"queue"`
	// State is asynq's state: pending, active, scheduled, retry, archived,
	// completed (or aggregating).
	State string `json:"state"`
	// Result is set once the task is completed or archived.
	Result *tasks.Result `json:"result"`
}

// handleGetTask is GET /v1/tasks/{id}?queue=Q: the task's state and, once it
// finished, its result. 404 when the queue or the task is unknown.
func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	queue := r.URL.Query().Get("queue")
	if queue == "" {
		queue = tasks.DefaultQueue
	}
	res, err := tasks.GetResult(r.Context(), s.insp, queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no task %q in queue %q", id, queue), "id")
		return
	case errors.Is(err, tasks.ErrNotFinished):
		writeJSON(w, http.StatusOK, TaskState{ID: res.ID, TaskID: res.TaskID, Queue: res.Queue, State: res.Status})
		return
	case err != nil:
		s.log.Error().Err(err).Str("queue", queue).Msg("get task")
		writeError(w, http.StatusServiceUnavailable, "reading the task: "+err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, TaskState{ID: res.ID, TaskID: res.TaskID, Queue: res.Queue, State: res.Status, Result: &res})
}
