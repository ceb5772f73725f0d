package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
)

// answerFixture is one file of testdata/fixtures (see its README).
type answerFixture struct {
	Source   string            `json:"source"`
	Endpoint string            `json:"endpoint"`
	Stream   bool              `json:"stream"`
	Status   int               `json:"status"`
	Headers  map[string]string `json:"headers"`
	Body     string            `json:"body"`
	Want     struct {
		Kind       string `json:"kind"`
		Retried    bool   `json:"retried"`
		Failure    bool   `json:"failure"`
		Pause      string `json:"pause"`
		Calls      int64  `json:"calls"`
		RetryDelay string `json:"retry_delay"`
		Message    string `json:"message"`
		NotMessage string `json:"not_message"`
	} `json:"want"`
}

// fixtureInlineWait is MaxInlineWait in the fixture tests: short enough that
// 1 s pauses go back to asynq, so the table runs quickly.
const fixtureInlineWait = 500 * time.Millisecond

// pauseSlack is how much later than the provider's answer the handler may
// read its clock (a loaded machine, -race): a pause record's until lies
// between answer+pause and answer+pause+pauseSlack.
const pauseSlack = 100 * time.Millisecond

// answerServer answers every request with the fixture, counts them and
// keeps the time of the last answer (unix ns).
func answerServer(t *testing.T, fx answerFixture) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var calls, last atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		last.Store(time.Now().UnixNano())
		for k, v := range fx.Headers {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(fx.Status)
		io.WriteString(w, fx.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls, &last
}

// fixtureHandler is a handler with quota control on a fresh account,
// calling baseURL through the real openai-go client.
func fixtureHandler(t *testing.T, baseURL string) (*Handler, *pausegate.Gate, string) {
	t.Helper()
	r := testutil.NewRedis(t)
	lim, err := quota.New(r.Client, quota.Config{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := pausegate.New(r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	h := NewHandler(HandlerConfig{Account: acct, QuotaControl: true, MaxInlineWait: fixtureInlineWait, DefaultPause: time.Hour}, lim, g,
		provider.New(provider.Config{BaseURL: baseURL + "/v1", APIKey: "sk-test-fixture"}))
	return h, g, acct
}

// TestFixtures sends every recorded provider answer through the real
// openai-go client and Handler.ProcessTask and checks what promptq did:
// the kind, whether asynq retries the task, whether the attempt counts as a
// failure, and the account's pause.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fixtures", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var fx answerFixture
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			srv, calls, last := answerServer(t, fx)
			h, g, acct := fixtureHandler(t, srv.URL)

			payload := fmt.Sprintf(`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":%q,"stream":%v}`, fx.Endpoint, fx.Stream)
			err = h.ProcessTask(context.Background(), task(payload))
			var be *backoff.Error
			if !errors.As(err, &be) {
				t.Fatalf("ProcessTask = %v (%T), want a classified error", err, err)
			}
			w := fx.Want
			if string(be.Kind) != w.Kind {
				t.Errorf("kind = %s, want %s (%v)", be.Kind, w.Kind, be)
			}
			if retried := !errors.Is(err, asynq.SkipRetry); retried != w.Retried {
				t.Errorf("retried = %v, want %v", retried, w.Retried)
			}
			if f := backoff.IsFailure(err); f != w.Failure {
				t.Errorf("counts as failure = %v, want %v", f, w.Failure)
			}
			if n := calls.Load(); w.Calls > 0 && n != w.Calls {
				t.Errorf("provider saw %d requests, want %d", n, w.Calls)
			}
			rec, active, cerr := g.Check(context.Background(), acct)
			if cerr != nil {
				t.Fatal(cerr)
			}
			if w.Pause == "" {
				if active {
					t.Errorf("account paused until %v (%s), want no pause", rec.Until, rec.Kind)
				}
			} else {
				want, _ := time.ParseDuration(w.Pause)
				// until is stored in whole ms.
				got := rec.Until.Sub(time.Unix(0, last.Load()))
				if !active && want > pauseSlack || got < want-time.Millisecond || got > want+pauseSlack {
					t.Errorf("pause = %v (active %v, kind %s), want %v", got, active, rec.Kind, want)
				}
			}
			if w.RetryDelay != "" {
				want, _ := time.ParseDuration(w.RetryDelay)
				if d := backoff.RetryDelay(0, err); d < want-time.Second || d > want+time.Second {
					t.Errorf("asynq retry delay = %v, want about %v", d, want)
				}
			}
			text := resultError(be)
			if w.Message != "" && !strings.Contains(text, w.Message) {
				t.Errorf("result error %q does not hold %q", text, w.Message)
			}
			if w.NotMessage != "" && strings.Contains(text, w.NotMessage) {
				t.Errorf("result error %q holds %q", text, w.NotMessage)
			}
			if strings.Contains(be.Error(), "sk-test-fixture") || strings.Contains(text, "sk-test-fixture") {
				t.Errorf("the API key leaked: %q / %q", be.Error(), text)
			}
		})
	}
}
