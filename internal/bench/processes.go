package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// workers are the worker processes of one run.
type workers struct {
	cmds   []*exec.Cmd
	stderr []*tailBuffer
}

func (e *runEnv) startWorkers(k, concurrency int, id, baseURL, mode string, extra []string) (*workers, error) {
	args := []string{"worker",
		"--redis", e.cfg.RedisURL, "--account", id, "--queues", id + "=1",
		"--concurrency", strconv.Itoa(concurrency), "--openai-base-url", baseURL,
		"--quota-control=" + strconv.FormatBool(mode == ModePromptq),
		"--pause-duration-hours", "0.0167", "--shutdown-timeout", "5s", "--log-format", "json",
	}
	return e.spawn(k, append(args, extra...), []string{"OPENAI_API_KEY=sk-bench", "LOG_LEVEL=warn"})
}

// spawn starts k processes of `Binary args...` with env added to the
// bench's environment.
func (e *runEnv) spawn(k int, args, env []string) (*workers, error) {
	ws := &workers{}
	for i := range k {
		cmd := exec.Command(e.cfg.Binary, args...)
		cmd.Env = append(os.Environ(), env...)
		buf := &tailBuffer{max: 4096}
		cmd.Stdout, cmd.Stderr = buf, buf
		if err := cmd.Start(); err != nil {
			ws.kill()
			return nil, fmt.Errorf("bench: start worker %d: %w", i+1, err)
		}
		ws.cmds = append(ws.cmds, cmd)
		ws.stderr = append(ws.stderr, buf)
	}
	return ws, nil
}

// stop sends SIGTERM to every worker, waits for them (killing any still
// running after 10s) and returns the tail of their output.
func (ws *workers) stop() string {
	for _, c := range ws.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	var wg sync.WaitGroup
	for _, c := range ws.cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.AfterFunc(10*time.Second, func() { _ = c.Process.Kill() })
			_ = c.Wait()
			t.Stop()
		}()
	}
	wg.Wait()
	ws.cmds = nil
	var out bytes.Buffer
	for i, b := range ws.stderr {
		if s := b.String(); s != "" {
			fmt.Fprintf(&out, "worker %d: %s", i+1, s)
		}
	}
	return out.String()
}

// kill ends workers still running (after an error).
func (ws *workers) kill() {
	for _, c := range ws.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	ws.cmds = nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
