package worker

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/provider"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/internal/tokens"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
	"github.com/promptq/promptq/quota/backoff"
	"github.com/promptq/promptq/tasks"
)

type fixture struct {
	h       *Handler
	lim     *quota.Limiter
	fake    *fakeopenai.Server
	gate    *pausegate.Gate
	rdb     *testutil.Redis
	account string
}

func setup(t *testing.T, fc fakeopenai.Config) *fixture {
	t.Helper()
	r := testutil.NewRedis(t)
	fake := fakeopenai.New(fc)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
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
	h := NewHandler(HandlerConfig{Account: acct, QuotaControl: true}, lim, g,
		provider.New(provider.Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test"}))
	return &fixture{h: h, lim: lim, fake: fake, gate: g, rdb: r, account: acct}
}

func task(payload string) *asynq.Task { return asynq.NewTask("promptq:prompt", []byte(payload)) }

func TestHandlerSuccess(t *testing.T) {
	f := setup(t, fakeopenai.Config{RPM: 600})
	for _, p := range []string{
		`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32}`,
		`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"stream":true}`,
		`{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32,"endpoint":"chat_completions"}`,
		`{"model":"gpt-4o-mini","input":[{"role":"user","content":"hello"}],"max_output_tokens":32,"endpoint":"chat_completions","stream":true}`,
	} {
		if err := f.h.ProcessTask(context.Background(), task(p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if s := f.fake.Stats(); s.OK != 4 || s.Requests != 4 {
		t.Fatalf("provider stats = %+v, want 4 ok requests", s)
	}
}

func TestHandlerInvalidIsPermanent(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	err := f.h.ProcessTask(context.Background(), task(`{"model":"bad-model","input":"hello","max_output_tokens":32}`))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("want SkipRetry, got %v", err)
	}
	var be *backoff.Error
	if !errors.As(err, &be) || be.Kind != backoff.KindInvalid || be.Message == "" {
		t.Fatalf("want invalid with the provider's message, got %#v", be)
	}
	if !backoff.IsFailure(err) {
		t.Fatal("an invalid task must count as a failure so asynq archives it")
	}
}

func TestHandlerMalformedPayloadNoCall(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	err := f.h.ProcessTask(context.Background(), task(`{"model":42}`))
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("want SkipRetry, got %v", err)
	}
	if n := f.fake.Stats().Requests; n != 0 {
		t.Fatalf("provider called %d times for a malformed payload", n)
	}
}

func TestHandlerQuotaPausesAccount(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	f.fake.SetMode(fakeopenai.ModeInsufficientQuota, 0)
	err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`))
	var be *backoff.Error
	if !errors.As(err, &be) || be.Kind != backoff.KindQuota {
		t.Fatalf("want quota error, got %v", err)
	}
	if backoff.IsFailure(err) {
		t.Fatal("a quota wait must not spend a retry")
	}
	rec, active, err := f.gate.Check(context.Background(), f.account)
	if err != nil || !active || rec.Kind != "quota" {
		t.Fatalf("pause record = %+v active=%v err=%v, want an active quota pause", rec, active, err)
	}
	if d := rec.Remaining(time.Now()); d < 59*time.Minute {
		t.Fatalf("pause lasts %v, want the default hour", d)
	}
	// The next task does not reach the provider.
	err = f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"again","max_output_tokens":32}`))
	var w *backoff.Deferral
	if !errors.As(err, &w) || w.Delay < 59*time.Minute {
		t.Fatalf("want a wait until the pause ends, got %v", err)
	}
	if n := f.fake.Stats().Requests; n != 1 {
		t.Fatalf("provider saw %d requests, want 1", n)
	}
}

func TestHandlerLongQuotaWaitReturnsTask(t *testing.T) {
	f := setup(t, fakeopenai.Config{RPM: 1})
	if err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"one","max_output_tokens":32}`)); err != nil {
		t.Fatal(err)
	}
	err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"two","max_output_tokens":32}`))
	var w *backoff.Deferral
	if !errors.As(err, &w) || w.Delay <= MaxInlineWaitDefault {
		t.Fatalf("want a long wait returned to asynq, got %v", err)
	}
	if backoff.IsFailure(err) {
		t.Fatal("a quota wait must not count as a failure")
	}
	if s := f.fake.Stats(); s.Requests != 1 || s.RateLimited != 0 {
		t.Fatalf("provider stats %+v: the second request must not be sent", s)
	}
}

func TestEstimateInput(t *testing.T) {
	p := `{"model":"m","input":"12345678","instructions":"abcd"}`
	pl, err := parse(p)
	if err != nil {
		t.Fatal(err)
	}
	// 12 characters -> 3 tokens, plus 4 per message (input + instructions);
	// no tokenizer for model "m".
	if got := EstimateInput(nil, pl); got != (quota.Input{Chars: 3 + 8}) {
		t.Fatalf("estimate = %+v, want chars 11, tokens 0", got)
	}
}

func parse(s string) (*tasks.Payload, error) { return tasks.ParsePayload([]byte(s), 0) }

func TestEstimateInputTokenizer(t *testing.T) {
	pl, err := parse(`{"model":"gpt-4o","input":[{"role":"user","content":"hello world"},{"role":"user","content":"hello world"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	// "hello world" is 2 tokens in o200k_base and 22 characters in all
	// (ceil(22/4) = 6); 4 tokens of framing per message on both bases.
	got := EstimateInput(tokens.NewEstimator(tokens.ModeAuto), pl)
	if want := (quota.Input{Chars: 6 + 8, Tokens: 2*2 + 8}); got != want {
		t.Fatalf("estimate = %+v, want %+v", got, want)
	}
	if got.Initial() != 14 {
		t.Fatalf("initial estimate = %d, want the larger basis, 14", got.Initial())
	}
}

func TestHandlerMonitoringOffLearnsNothing(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		f := setup(t, fakeopenai.Config{RPM: 600})
		f.h.cfg.IgnoreHeaders = ignore
		if err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
			t.Fatal(err)
		}
		s, err := f.h.routes[0].lim.Snapshot(context.Background(), f.account)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int64{false: 600, true: -1}[ignore]; s.Requests.Limit != want {
			t.Fatalf("IgnoreHeaders=%v: learned request limit %d, want %d", ignore, s.Requests.Limit, want)
		}
	}
}

func TestHandlerLogsQuotaSummaryAndNoSecrets(t *testing.T) {
	const key = "sk-test-SECRET-4242"
	r := testutil.NewRedis(t)
	fake := fakeopenai.New(fakeopenai.Config{RPM: 600})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	lim, _ := quota.New(r.Client, quota.Config{})
	g, _ := pausegate.New(r.Client, pausegate.Config{})
	var buf bytes.Buffer
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	h := NewHandler(HandlerConfig{Account: acct, QuotaControl: true, QuotaLogEvery: 2, Logger: zerolog.New(&buf).Level(zerolog.DebugLevel)},
		lim, g, provider.New(provider.Config{BaseURL: srv.URL + "/v1", APIKey: key}))
	for range 4 {
		if err := h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
			t.Fatal(err)
		}
	}
	fake.SetMode(fakeopenai.ModeServerError, 0)
	_ = h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32}`))
	_ = h.ProcessTask(context.Background(), task(`{"model":"bad-model","input":"hello","max_output_tokens":32}`))
	out := buf.String()
	if n := strings.Count(out, `"quota summary"`); n != 2 {
		t.Fatalf("%d quota summaries for 4 tasks every 2, want 2:\n%s", n, out)
	}
	if strings.Contains(out, key) || strings.Contains(out, "SECRET") {
		t.Fatalf("API key in logs:\n%s", out)
	}
}

func TestHandlerAdaptiveConcurrencyShrinksOnOverload(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	r := testutil.NewRedis(t)
	conc, err := quota.NewConcurrency(r.Client, quota.ConcurrencyConfig{Initial: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.h.conc = conc
	ctx := context.Background()
	if err := f.h.ProcessTask(ctx, task(`{"model":"m","input":"hello","max_output_tokens":32}`)); err != nil {
		t.Fatal(err)
	}
	if limit, held, _ := conc.Limit(ctx, f.account); limit != 10 || held != 0 {
		t.Fatalf("after a success: limit %d held %d, want 10 and the permit released", limit, held)
	}
	f.fake.SetMode(fakeopenai.ModeServerError, 0)
	_ = f.h.ProcessTask(ctx, task(`{"model":"m","input":"hello","max_output_tokens":32}`))
	if limit, held, _ := conc.Limit(ctx, f.account); limit != 7 || held != 0 {
		t.Fatalf("after a 5xx: limit %d held %d, want 7 (x0.7) and the permit released", limit, held)
	}
}

type panicky struct{}

func (panicky) Call(context.Context, provider.Request, func(http.Header)) (*provider.Response, error) {
	panic("boom")
}

func TestHandlerPanicIsRecoveredAndRetried(t *testing.T) {
	h := NewHandler(HandlerConfig{Account: "a"}, nil, nil, panicky{})
	err := h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello"}`))
	var be *backoff.Error
	if !errors.As(err, &be) || be.Kind != backoff.KindUnknown || !strings.Contains(be.Message, "boom") {
		t.Fatalf("err = %v, want a classified panic", err)
	}
	if errors.Is(err, asynq.SkipRetry) || !backoff.IsFailure(err) {
		t.Fatal("a panic is a real failure that may be retried")
	}
}

// A streaming task teaches the shared buckets the limits when its stream
// opens, before it ends: checked from inside the stream.
func TestHandlerSyncsHeadersAtStreamOpen(t *testing.T) {
	f := setup(t, fakeopenai.Config{RPM: 600})
	var duringStream quota.Snapshot
	f.h.routes[0].client = openHook{inner: f.h.routes[0].client, hook: func() {
		duringStream, _ = f.h.routes[0].lim.Snapshot(context.Background(), f.account)
	}}
	err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":32,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if duringStream.Requests.Limit != 600 || duringStream.InFlight != 1 {
		t.Fatalf("during the stream: limit %d, in flight %d; want 600 learned at open and the reservation kept",
			duringStream.Requests.Limit, duringStream.InFlight)
	}
	if s, _ := f.h.routes[0].lim.Snapshot(context.Background(), f.account); s.InFlight != 0 {
		t.Fatalf("after the stream: %d in flight, want 0", s.InFlight)
	}
}

// openHook runs hook right after the handler's onOpen callback.
type openHook struct {
	inner completer
	hook  func()
}

func (o openHook) Call(ctx context.Context, req provider.Request, onOpen func(http.Header)) (*provider.Response, error) {
	return o.inner.Call(ctx, req, func(h http.Header) {
		if onOpen != nil {
			onOpen(h)
		}
		o.hook()
	})
}

// OpenAI answers a request larger than the whole token limit with a 429
// ("Request too large"): it can never succeed, so it is archived, not
// retried forever as a rate limit.
func TestHandlerRequestTooLargeIsPermanent(t *testing.T) {
	f := setup(t, fakeopenai.Config{TPM: 100})
	err := f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":500}`))
	var be *backoff.Error
	if !errors.Is(err, asynq.SkipRetry) || !errors.As(err, &be) || be.Kind != backoff.KindInvalid {
		t.Fatalf("err = %v, want a permanent invalid failure", err)
	}
}

// A cost above a configured token limit is refused before any call.
func TestHandlerCostAboveLimitNeverSent(t *testing.T) {
	f := setup(t, fakeopenai.Config{})
	r := testutil.NewRedis(t)
	lim, err := quota.New(r.Client, quota.Config{TPM: 100})
	if err != nil {
		t.Fatal(err)
	}
	f.h.routes[0].lim = lim
	err = f.h.ProcessTask(context.Background(), task(`{"model":"m","input":"hello","max_output_tokens":500}`))
	var be *backoff.Error
	if !errors.Is(err, asynq.SkipRetry) || !errors.As(err, &be) || be.Kind != backoff.KindInvalid {
		t.Fatalf("err = %v, want a permanent invalid failure", err)
	}
	if n := f.fake.Stats().Requests; n != 0 {
		t.Fatalf("provider saw %d requests, want 0", n)
	}
}

// TestHandlerWaitsOutShortPause: a pause that ends within MaxInlineWait (a
// rate-limit 429's precise wait, from another worker) is waited out in the
// slot and the task goes on, instead of going back to asynq for a whole
// second; a longer one sends the task back.
func TestHandlerWaitsOutShortPause(t *testing.T) {
	f := setup(t, fakeopenai.Config{RPM: 600})
	ctx := context.Background()
	p := `{"model":"gpt-4o-mini","input":"hello","max_output_tokens":32}`

	if _, err := f.gate.Pause(ctx, f.account, pausegate.PauseRequest{Until: time.Now().Add(150 * time.Millisecond), Reason: "429", Kind: pausegate.KindRateLimit}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.h.ProcessTask(ctx, task(p)); err != nil {
		t.Fatalf("short pause: %v, want the task done in the same slot", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("the call went out after %v, before the pause ended", waited)
	}

	if _, err := f.gate.Pause(ctx, f.account, pausegate.PauseRequest{Until: time.Now().Add(10 * time.Second), Reason: "429", Kind: pausegate.KindRateLimit}); err != nil {
		t.Fatal(err)
	}
	var w *backoff.Deferral
	if err := f.h.ProcessTask(ctx, task(p)); !errors.As(err, &w) {
		t.Fatalf("long pause: %v, want the task back to asynq (*backoff.Deferral)", err)
	}
	if s := f.fake.Stats(); s.Requests != 1 {
		t.Fatalf("provider saw %d requests, want 1", s.Requests)
	}
}
