package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/tasks"
)

type enqueueSummary struct {
	Enqueued   int `json:"enqueued"`
	Duplicates int `json:"duplicates"`
	Invalid    int `json:"invalid"`
	Failed     int `json:"failed"`
	Lines      int `json:"lines"`
}

// enqueueFlags are the flags of `promptq enqueue`.
type enqueueFlags struct {
	common
	file      string
	queue     string
	queues    string
	asJSON    bool
	retention time.Duration
	maxRetry  int
	timeout   time.Duration
	parallel  int
}

func (e *enqueueFlags) register(f *config.Flags) {
	e.common.register(f, false)
	f.String(&e.file, "file", "PROMPTQ_FILE", "", "JSONL file to read, or - for standard input (required)")
	f.String(&e.queue, "queue", "PROMPTQ_QUEUE", tasks.DefaultQueue, "queue for lines that name none")
	f.String(&e.queues, "queues", "WORKER_QUEUES", "", "when set, the only queues a line may name (same form as the worker's --queues)")
	f.Bool(&e.asJSON, "json", "PROMPTQ_JSON", false, "print the summary as JSON")
	f.Duration(&e.retention, "retention", "RESULT_RETENTION", tasks.RetentionDefault, "how long results are kept after a task finishes")
	f.Int(&e.maxRetry, "max-retry", "MAX_RETRY", tasks.MaxRetryDefault, "real failures a task may have before it is archived (waits for quota do not count)")
	f.Duration(&e.timeout, "task-timeout", "TASK_TIMEOUT", 0, "per-attempt timeout of a task (0 = asynq's default, 30m)")
	f.Int(&e.parallel, "parallel", "ENQUEUE_PARALLEL", 8, "enqueue requests in flight at once (1-64)")
}

// validate checks ranges and returns the queues a line may name (nil =
// any); each message names the flag, its env and the range.
func (e *enqueueFlags) validate() (map[string]int, error) {
	switch {
	case e.file == "":
		return nil, errors.New("enqueue: --file is required (a JSONL path, or - for standard input)")
	case e.parallel < 1 || e.parallel > 64:
		return nil, fmt.Errorf("--parallel / ENQUEUE_PARALLEL must be between 1 and 64, got %d", e.parallel)
	case e.retention < time.Minute:
		return nil, fmt.Errorf("--retention / RESULT_RETENTION must be at least 1m, got %v", e.retention)
	case e.maxRetry < 0 || e.maxRetry > 1000:
		return nil, fmt.Errorf("--max-retry / MAX_RETRY must be between 0 and 1000, got %d", e.maxRetry)
	case e.queues == "":
		return nil, nil
	}
	q, err := config.ParseQueues(e.queues)
	if err != nil {
		return nil, fmt.Errorf("--queues / WORKER_QUEUES: %v", err)
	}
	return q, nil
}

func runEnqueue(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var e enqueueFlags
	f := config.New("enqueue", "Enqueue prompt tasks from a JSONL file, one task a line:\n"+
		`  {"id": "optional idempotency key", "model": "gpt-4o-mini", "input": "text or [{role, content}]",`+"\n"+
		`   "instructions": "...", "max_output_tokens": 256, "stream": false, "endpoint": "responses|chat_completions",`+"\n"+
		`   "metadata": {...}, "queue": "default"}`+"\n"+
		"A given id becomes the asynq TaskID: enqueuing the same file twice adds nothing. A bad line is reported\n"+
		"with its number and does not stop the others; the exit code is 1 if any line was bad.", stdout)
	e.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	allowed, err := e.validate()
	if err != nil {
		return err
	}
	in, size, closeIn, err := openInput(e.file, stdin)
	if err != nil {
		return err
	}
	defer closeIn()
	rdb, aopt, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	client := asynq.NewClient(aopt)
	defer client.Close()
	r := &enqueueRun{
		enq:    &tasks.Enqueuer{Client: client, Opts: taskOptions(e.retention, e.maxRetry, e.timeout)},
		queue:  e.queue,
		allow:  allowed,
		stderr: stderr,
		warned: map[string]bool{},
	}
	if allowed == nil {
		r.consumed = consumedQueues(ctx, rdb)
	}
	r.run(ctx, in, size, e.parallel)
	r.sum.print(stdout, e.asJSON)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.sum.Invalid > 0 || r.sum.Failed > 0 {
		return ErrBadInput
	}
	return nil
}

// taskOptions are the options of tasks enqueued by a command; maxRetry 0
// means no retry at all (tasks.Options takes -1 for that).
func taskOptions(retention time.Duration, maxRetry int, timeout time.Duration) tasks.Options {
	o := tasks.Options{Retention: retention, MaxRetry: max(maxRetry, 0), Timeout: timeout}
	if maxRetry == 0 {
		o.MaxRetry = -1
	}
	return o
}

// openInput opens the JSONL file, or returns stdin for "-"; size is the
// file's size, -1 when unknown.
func openInput(file string, stdin io.Reader) (in io.Reader, size int64, closeIn func(), err error) {
	if file == "-" {
		return stdin, -1, func() {}, nil
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("enqueue: %v", err)
	}
	size = -1
	if st, err := fh.Stat(); err == nil {
		size = st.Size()
	}
	return fh, size, func() { _ = fh.Close() }, nil
}

// consumedQueues returns the queues some registered worker consumes, so
// that enqueue can warn about tasks that would wait in a queue nobody reads.
func consumedQueues(ctx context.Context, rdb redis.UniversalClient) map[string]bool {
	consumed := map[string]bool{}
	accts, _ := pausegate.Accounts(ctx, rdb)
	for _, a := range accts {
		qs, _ := rdb.SMembers(ctx, keys.Queues(a)).Result()
		for _, q := range qs {
			consumed[q] = true
		}
	}
	return consumed
}

// enqueueRun is one run of `promptq enqueue`: the reader parses lines and
// hands valid ones to a pool of goroutines that enqueue them.
type enqueueRun struct {
	enq      *tasks.Enqueuer
	queue    string          // for lines that name none
	allow    map[string]int  // queues a line may name; nil = any
	consumed map[string]bool // queues a worker consumes; empty = do not warn
	stderr   io.Writer
	warned   map[string]bool // queues warned about (reader goroutine only)

	mu  sync.Mutex // guards sum and writes to stderr
	sum enqueueSummary
}

// run reads every line of in and enqueues the valid ones, parallel at once.
func (r *enqueueRun) run(ctx context.Context, in io.Reader, size int64, parallel int) {
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				r.enqueue(ctx, j)
			}
		}()
	}
	r.read(ctx, in, size, jobs)
	close(jobs)
	wg.Wait()
}

// enqueue enqueues one valid line and counts the outcome.
func (r *enqueueRun) enqueue(ctx context.Context, j job) {
	out, err := r.enq.Enqueue(ctx, j.p)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil:
		r.sum.Failed++
		fmt.Fprintf(r.stderr, "line %d: enqueue failed: %v\n", j.line, err)
	case out.Duplicate:
		r.sum.Duplicates++
	default:
		r.sum.Enqueued++
	}
}

// read parses in line by line, reports bad lines with their number, sends
// good ones to jobs and prints progress every 2 seconds.
func (r *enqueueRun) read(ctx context.Context, in io.Reader, size int64, jobs chan<- job) {
	br := bufio.NewReaderSize(in, 1<<16)
	var read int64
	lastOut := time.Now()
	for line := 1; ; line++ {
		data, rerr := br.ReadBytes('\n')
		read += int64(len(data))
		if p := r.parse(line, data); p != nil {
			select {
			case jobs <- job{line, p}:
			case <-ctx.Done():
			}
		}
		if time.Since(lastOut) > 2*time.Second {
			lastOut = time.Now()
			r.progress(read, size)
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				r.report("enqueue: reading input: %v", rerr)
				r.count(&r.sum.Failed)
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// parse returns the payload of one line, or nil for a blank line or a bad
// one (reported and counted as invalid).
func (r *enqueueRun) parse(line int, data []byte) *tasks.Payload {
	data = trimSpace(data)
	if len(data) == 0 {
		return nil
	}
	r.count(&r.sum.Lines)
	p, err := tasks.ParsePayload(data, tasks.MaxPayloadBytesDefault)
	if err == nil && p.Queue == "" {
		p.Queue = r.queue
	}
	if err == nil {
		err = checkQueue(p.QueueName(), r.allow)
	}
	if err != nil {
		r.count(&r.sum.Invalid)
		r.report("line %d: %v", line, err)
		return nil
	}
	if q := p.QueueName(); len(r.consumed) > 0 && !r.consumed[q] && !r.warned[q] {
		r.warned[q] = true
		r.report("warning: line %d: no registered worker consumes queue %q; its tasks wait until one does", line, q)
	}
	return p
}

// progress prints how far the run is; read of size bytes (size -1: unknown).
func (r *enqueueRun) progress(read, size int64) {
	r.mu.Lock()
	s := r.sum
	r.mu.Unlock()
	if size > 0 {
		r.report("enqueue: %d lines read (%.0f%%), %d enqueued, %d duplicates, %d invalid", s.Lines, 100*float64(read)/float64(size), s.Enqueued, s.Duplicates, s.Invalid)
	} else {
		r.report("enqueue: %d lines read, %d enqueued, %d duplicates, %d invalid", s.Lines, s.Enqueued, s.Duplicates, s.Invalid)
	}
}

func (r *enqueueRun) count(n *int) {
	r.mu.Lock()
	*n++
	r.mu.Unlock()
}

// report prints one line to stderr.
func (r *enqueueRun) report(format string, a ...any) {
	r.mu.Lock()
	fmt.Fprintf(r.stderr, format+"\n", a...)
	r.mu.Unlock()
}

// print writes the summary: one JSON object or one line.
func (s enqueueSummary) print(w io.Writer, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintf(w, "enqueued: %d, duplicates: %d, invalid: %d", s.Enqueued, s.Duplicates, s.Invalid)
	if s.Failed > 0 {
		fmt.Fprintf(w, ", failed: %d", s.Failed)
	}
	fmt.Fprintln(w)
}

type job struct {
	line int
	p    *tasks.Payload
}

func checkQueue(q string, allowed map[string]int) error {
	if allowed == nil {
		return nil
	}
	if _, ok := allowed[q]; !ok {
		names := make([]string, 0, len(allowed))
		for n := range allowed {
			names = append(names, n)
		}
		return &tasks.FieldError{Field: "queue", Msg: fmt.Sprintf("unknown queue %q (allowed: %v)", q, names)}
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\xef') {
		if b[0] == '\xef' && len(b) >= 3 && b[1] == '\xbb' && b[2] == '\xbf' { // UTF-8 BOM
			b = b[3:]
			continue
		}
		if b[0] == '\xef' {
			break
		}
		b = b[1:]
	}
	return b
}
