package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/tasks"
)

// Statuses of one task in a POST /v1/tasks response.
const (
	StatusEnqueued  = "enqueued"  // added to its queue
	StatusDuplicate = "duplicate" // a task with this id exists; nothing added (problem: 409)
	StatusInvalid   = "invalid"   // rejected (problem: 400 or 413)
	StatusFailed    = "failed"    // valid, but Redis refused it; retry later (problem: 503)
)

// enqueueParallel is how many tasks of one batch are enqueued at once.
const enqueueParallel = 8

// TaskOutcome is one task of a POST /v1/tasks response, in request order.
// For one task object the body is the outcome itself (202), or its Problem
// alone (409, 413, 400, 503).
type TaskOutcome struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	TaskID string `json:"task_id,omitempty"`
	Queue  string `json:"queue,omitempty"`
	Status string `json:"status"`
	// Location is where the task can be read (enqueued or duplicate).
	Location string `json:"location,omitempty"`
	// Problem says why the task was not enqueued.
	Problem *Problem `json:"problem,omitempty"`
}

// EnqueueResponse is the body of a POST /v1/tasks response to an array.
type EnqueueResponse struct {
	Tasks []TaskOutcome `json:"tasks"`
}

// taskLocation is the URL path of a task's GET.
func taskLocation(taskID, queue string) string {
	return "/v1/tasks/" + url.PathEscape(taskID) + "?queue=" + url.QueryEscape(queue)
}

// handleEnqueue is POST /v1/tasks. The body is one task object (the JSON of
// a `promptq enqueue` line) or an array of them. One object: 202 with
// Location, or a problem: 409 for a duplicate id (with the existing task's
// location), 413 over the task size limit, 400 invalid, 503 not stored. An
// array: 202 when every task was enqueued, else 207 with each task's
// outcome and problem.
func (s *Server) handleEnqueue(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	var raws []json.RawMessage
	batch := len(data) > 0 && data[0] == '['
	switch {
	case len(data) == 0:
		fail(w, http.StatusBadRequest, CodeInvalidJSON, "empty body: send a task object or an array of them", "body")
		return
	case batch:
		if err := json.Unmarshal(data, &raws); err != nil {
			msg, _ := describeJSONError(err)
			fail(w, http.StatusBadRequest, CodeInvalidJSON, msg, "body")
			return
		}
		if len(raws) == 0 {
			fail(w, http.StatusBadRequest, CodeInvalidJSON, "empty array: no task to enqueue", "body")
			return
		}
	default:
		raws = []json.RawMessage{data}
	}

	out := make([]TaskOutcome, len(raws))
	valid := make([]*tasks.Payload, len(raws))
	for i, raw := range raws {
		out[i] = TaskOutcome{Index: i}
		p, prob := parseTask(raw)
		if prob != nil {
			out[i].Status, out[i].Problem, out[i].ID = StatusInvalid, prob, idOf(raw)
			continue
		}
		valid[i] = p
	}
	s.enqueueAll(r, valid, out)

	var enqueued, invalid, failed int
	for _, o := range out {
		switch o.Status {
		case StatusEnqueued:
			enqueued++
		case StatusInvalid:
			invalid++
		case StatusFailed:
			failed++
		}
	}
	s.log.Info().Int("tasks", len(out)).Int("enqueued", enqueued).Int("invalid", invalid).
		Int("failed", failed).Msg("enqueue")
	if !batch {
		o := out[0]
		if o.Problem != nil {
			writeProblem(w, o.Problem)
			return
		}
		w.Header().Set("Location", o.Location)
		writeJSON(w, http.StatusAccepted, o)
		return
	}
	code := http.StatusAccepted
	if enqueued < len(out) {
		code = http.StatusMultiStatus
	}
	writeJSON(w, code, EnqueueResponse{Tasks: out})
}

// parseTask decodes and validates one task, or says why it is refused.
func parseTask(raw json.RawMessage) (*tasks.Payload, *Problem) {
	if len(raw) > tasks.MaxPayloadBytesDefault {
		return nil, newProblem(http.StatusRequestEntityTooLarge, CodeTaskTooLarge,
			fmt.Sprintf("the task is %d bytes; the limit is %d", len(raw), tasks.MaxPayloadBytesDefault)).withField("payload")
	}
	p, err := tasks.ParsePayload(raw, tasks.MaxPayloadBytesDefault)
	var fe *tasks.FieldError
	switch {
	case err == nil:
		return p, nil
	case errors.As(err, &fe) && fe.Field == "payload":
		return nil, newProblem(http.StatusBadRequest, CodeInvalidJSON, fe.Msg).withField("payload")
	case errors.As(err, &fe):
		return nil, newProblem(http.StatusBadRequest, CodeInvalidField, fe.Msg).withField(fe.Field)
	}
	return nil, newProblem(http.StatusBadRequest, CodeInvalidJSON, "the task is not valid").withField("payload")
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
					o.Status, o.Problem = StatusInvalid, newProblem(http.StatusBadRequest, CodeInvalidField, fe.Msg).withField(fe.Field)
				case err != nil:
					o.Status = StatusFailed
					o.Problem = newProblem(http.StatusServiceUnavailable, CodeEnqueueFailed, "the task could not be stored; retry later")
					s.log.Error().Err(err).Str("queue", o.Queue).Msg("enqueue failed")
				case res.Duplicate:
					o.Status, o.TaskID = StatusDuplicate, res.TaskID
					o.Location = taskLocation(res.TaskID, o.Queue)
					o.Problem = newProblem(http.StatusConflict, CodeDuplicateTask,
						fmt.Sprintf("queue %q already holds a task with id %q; nothing was added", o.Queue, res.TaskID))
					o.Problem.Location = o.Location
				default:
					o.Status, o.TaskID, o.Queue = StatusEnqueued, res.TaskID, res.Queue
					o.Location = taskLocation(res.TaskID, res.Queue)
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

// handleGetTask is GET /v1/tasks/{id}[?queue=Q]: the task's state and, once
// it finished, its result, from whichever queue holds it (?queue= narrows
// the search). 404 when no queue holds it, 409 when several do.
func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	queues := []string{r.URL.Query().Get("queue")}
	if queues[0] == "" {
		var err error
		if queues, err = s.insp.Queues(); err != nil {
			s.log.Error().Err(err).Msg("listing queues failed")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "listing the queues failed; Redis may be unreachable", "")
			return
		}
		sort.Strings(queues)
	}
	var found []tasks.Result
	var holders []string
	var finished []bool
	for _, q := range queues {
		res, err := tasks.GetResult(r.Context(), s.insp, q, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			continue
		case err != nil && !errors.Is(err, tasks.ErrNotFinished):
			s.log.Error().Err(err).Str("queue", q).Msg("get task")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "reading the task failed; Redis may be unreachable", "")
			return
		}
		found, holders, finished = append(found, res), append(holders, q), append(finished, err == nil)
	}
	switch len(found) {
	case 0:
		fail(w, http.StatusNotFound, CodeTaskNotFound, fmt.Sprintf("no queue holds a task %q", id), "id")
		return
	case 1:
	default:
		fail(w, http.StatusConflict, CodeAmbiguousTask, fmt.Sprintf("queues %q all hold a task %q; name one with ?queue=", holders, id), "queue")
		return
	}
	res := found[0]
	st := TaskState{ID: res.ID, TaskID: res.TaskID, Queue: res.Queue, State: res.Status}
	if finished[0] {
		st.Result = &res
	}
	writeJSON(w, http.StatusOK, st)
}
