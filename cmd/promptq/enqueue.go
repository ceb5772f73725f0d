package main

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

func runEnqueue(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		c         common
		file      string
		queue     string
		queues    string
		asJSON    bool
		retention time.Duration
		maxRetry  int
		timeout   time.Duration
		parallel  int
	)
	f := config.New("enqueue", "Enqueue prompt tasks from a JSONL file, one task a line:\n"+
		`  {"id": "optional idempotency key", "model": "gpt-4o-mini", "input": "text or [{role, content}]",`+"\n"+
		`   "instructions": "...", "max_output_tokens": 256, "stream": false, "endpoint": "responses|chat_completions",`+"\n"+
		`   "metadata": {...}, "queue": "default"}`+"\n"+
		"A given id becomes the asynq TaskID: enqueuing the same file twice adds nothing. A bad line is reported\n"+
		"with its number and does not stop the others; the exit code is 1 if any line was bad.", stdout)
	c.register(f, false)
	f.String(&file, "file", "PROMPTQ_FILE", "", "JSONL file to read, or - for standard input (required)")
	f.String(&queue, "queue", "PROMPTQ_QUEUE", tasks.DefaultQueue, "queue for lines that name none")
	f.String(&queues, "queues", "WORKER_QUEUES", "", "when set, the only queues a line may name (same form as the worker's --queues)")
	f.Bool(&asJSON, "json", "PROMPTQ_JSON", false, "print the summary as JSON")
	f.Duration(&retention, "retention", "RESULT_RETENTION", tasks.RetentionDefault, "how long results are kept after a task finishes")
	f.Int(&maxRetry, "max-retry", "MAX_RETRY", tasks.MaxRetryDefault, "real failures a task may have before it is archived (waits for quota do not count)")
	f.Duration(&timeout, "task-timeout", "TASK_TIMEOUT", 0, "per-attempt timeout of a task (0 = asynq's default, 30m)")
	f.Int(&parallel, "parallel", "ENQUEUE_PARALLEL", 8, "enqueue requests in flight at once (1-64)")
	if err := f.Parse(args); err != nil {
		return err
	}
	switch {
	case file == "":
		return errors.New("enqueue: --file is required (a JSONL path, or - for standard input)")
	case parallel < 1 || parallel > 64:
		return fmt.Errorf("--parallel / ENQUEUE_PARALLEL must be between 1 and 64, got %d", parallel)
	case retention < time.Minute:
		return fmt.Errorf("--retention / RESULT_RETENTION must be at least 1m, got %v", retention)
	case maxRetry < 0 || maxRetry > 1000:
		return fmt.Errorf("--max-retry / MAX_RETRY must be between 0 and 1000, got %d", maxRetry)
	}
	var allowed map[string]int
	if queues != "" {
		q, err := config.ParseQueues(queues)
		if err != nil {
			return fmt.Errorf("--queues / WORKER_QUEUES: %v", err)
		}
		allowed = q
	}
	in := stdin
	size := int64(-1)
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("enqueue: %v", err)
		}
		defer fh.Close()
		if st, err := fh.Stat(); err == nil {
			size = st.Size()
		}
		in = fh
	}
	rdb, aopt, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	consumed := map[string]bool{}
	if allowed == nil {
		// Warn about queues no registered worker consumes (tasks would wait there).
		accts, _ := pausegate.Accounts(ctx, rdb)
		for _, a := range accts {
			qs, _ := rdb.SMembers(ctx, keys.Queues(a)).Result()
			for _, q := range qs {
				consumed[q] = true
			}
		}
	}
	client := asynq.NewClient(aopt)
	defer client.Close()
	enq := &tasks.Enqueuer{Client: client, Opts: tasks.Options{Retention: retention, MaxRetry: max(maxRetry, 0), Timeout: timeout}}
	if maxRetry == 0 {
		enq.Opts.MaxRetry = -1
	}

	var (
		mu      sync.Mutex
		sum     enqueueSummary
		warned  = map[string]bool{}
		jobs    = make(chan job)
		wg      sync.WaitGroup
		read    int64
		lastOut = time.Now()
	)
	report := func(format string, a ...any) {
		mu.Lock()
		fmt.Fprintf(stderr, format+"\n", a...)
		mu.Unlock()
	}
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out, err := enq.Enqueue(ctx, j.p)
				mu.Lock()
				switch {
				case err != nil:
					sum.Failed++
					fmt.Fprintf(stderr, "line %d: enqueue failed: %v\n", j.line, err)
				case out.Duplicate:
					sum.Duplicates++
				default:
					sum.Enqueued++
				}
				mu.Unlock()
			}
		}()
	}
	br := bufio.NewReaderSize(in, 1<<16)
	for line := 1; ; line++ {
		data, rerr := br.ReadBytes('\n')
		read += int64(len(data))
		if len(trimSpace(data)) > 0 {
			mu.Lock()
			sum.Lines++
			mu.Unlock()
			p, perr := tasks.ParsePayload(trimSpace(data), tasks.MaxPayloadBytesDefault)
			if perr == nil && p.Queue == "" {
				p.Queue = queue
			}
			if perr == nil {
				perr = checkQueue(p.QueueName(), allowed)
			}
			if perr != nil {
				mu.Lock()
				sum.Invalid++
				mu.Unlock()
				report("line %d: %v", line, perr)
			} else {
				if len(consumed) > 0 && !consumed[p.QueueName()] && !warned[p.QueueName()] {
					warned[p.QueueName()] = true
					report("warning: line %d: no registered worker consumes queue %q; its tasks wait until one does", line, p.QueueName())
				}
				select {
				case jobs <- job{line, p}:
				case <-ctx.Done():
				}
			}
		}
		if time.Since(lastOut) > 2*time.Second {
			lastOut = time.Now()
			mu.Lock()
			s := sum
			mu.Unlock()
			if size > 0 {
				report("enqueue: %d lines read (%.0f%%), %d enqueued, %d duplicates, %d invalid", s.Lines, 100*float64(read)/float64(size), s.Enqueued, s.Duplicates, s.Invalid)
			} else {
				report("enqueue: %d lines read, %d enqueued, %d duplicates, %d invalid", s.Lines, s.Enqueued, s.Duplicates, s.Invalid)
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				report("enqueue: reading input: %v", rerr)
				mu.Lock()
				sum.Failed++
				mu.Unlock()
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(jobs)
	wg.Wait()
	if asJSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "enqueued: %d, duplicates: %d, invalid: %d", sum.Enqueued, sum.Duplicates, sum.Invalid)
		if sum.Failed > 0 {
			fmt.Fprintf(stdout, ", failed: %d", sum.Failed)
		}
		fmt.Fprintln(stdout)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sum.Invalid > 0 || sum.Failed > 0 {
		return errBadInput
	}
	return nil
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
