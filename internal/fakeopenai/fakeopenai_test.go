package fakeopenai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/promptq/promptq/internal/clock"
)

const testKey = "sk-test-0123456789"

// fixture is a fake behind an httptest server, a fake clock and a real
// openai-go client with retries off.
type fixture struct {
	fake   *Server
	srv    *httptest.Server
	clk    *clock.Fake
	client openai.Client
}

func setup(t *testing.T, cfg Config) *fixture {
	t.Helper()
	clk := clock.NewFake(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	if cfg.Clock == nil {
		cfg.Clock = clk.Now
	}
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	fake := New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := openai.NewClient(
		option.WithBaseURL(srv.URL+"/v1"),
		option.WithAPIKey(testKey),
		option.WithMaxRetries(0),
	)
	return &fixture{fake: fake, srv: srv, clk: clk, client: client}
}

func respParams(text string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(text)},
	}
}

func chatParams(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage(text)},
	}
}

// apiErr asserts err is an *openai.Error with the given status and code.
func apiErr(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *openai.Error", err, err)
	}
	if e.StatusCode != status || e.Code != code {
		t.Fatalf("status %d code %q, want %d %q (message %q)", e.StatusCode, e.Code, status, code, e.Message)
	}
	return e
}

func wantHeader(t *testing.T, h http.Header, key, want string) {
	t.Helper()
	if got := h.Get(key); got != want {
		t.Errorf("header %s = %q, want %q", key, got, want)
	}
}

func TestResponsesNew(t *testing.T) {
	f := setup(t, Config{RPM: 60, TPM: 100_000})
	var raw *http.Response
	resp, err := f.client.Responses.New(context.Background(), respParams("hello world"), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.OutputText(), "echo: hello world lorem ipsum dolor sit amet lorem ipsum dolor sit amet lorem ipsum dolor"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if len(strings.Fields(resp.OutputText())) != OutputTokensDefault {
		t.Errorf("text has %d words, want %d", len(strings.Fields(resp.OutputText())), OutputTokensDefault)
	}
	if !strings.HasPrefix(resp.ID, "resp_") || resp.Object != "response" || resp.Status != "completed" || resp.Model != "gpt-4o-mini" {
		t.Errorf("id %q object %q status %q model %q", resp.ID, resp.Object, resp.Status, resp.Model)
	}
	if len(resp.Output) != 1 || !strings.HasPrefix(resp.Output[0].ID, "msg_") || resp.Output[0].Role != "assistant" {
		t.Errorf("output = %+v", resp.Output)
	}
	// "hello world" is 11 chars: ceil(11/4) + 4 per message = 7.
	if u := resp.Usage; u.InputTokens != 7 || u.OutputTokens != 16 || u.TotalTokens != 23 {
		t.Errorf("usage = %+v", u)
	}
	if raw.Header.Get("x-request-id") == "" || raw.Header.Get("openai-processing-ms") == "" {
		t.Errorf("missing x-request-id / openai-processing-ms: %v", raw.Header)
	}
	// One request of a 60-per-minute bucket refills in 1s; 7+4096 tokens at
	// 100000/60 per second refill in 2.4618s, rounded up to the ms.
	wantHeader(t, raw.Header, "x-ratelimit-limit-requests", "60")
	wantHeader(t, raw.Header, "x-ratelimit-remaining-requests", "59")
	wantHeader(t, raw.Header, "x-ratelimit-reset-requests", "1s")
	wantHeader(t, raw.Header, "x-ratelimit-limit-tokens", "100000")
	wantHeader(t, raw.Header, "x-ratelimit-remaining-tokens", "95897")
	wantHeader(t, raw.Header, "x-ratelimit-reset-tokens", "2.462s")

	st := f.fake.Stats()
	if st.Requests != 1 || st.OK != 1 || st.TokensCharged != 4103 || st.InputTokens != 7 || st.OutputTokens != 16 || st.InFlight != 0 || st.LastOKAt == "" || st.FirstRequestAt == "" {
		t.Errorf("stats = %+v", st)
	}
}

func TestResponsesMessagesAndCaps(t *testing.T) {
	f := setup(t, Config{OutputTokens: 32})
	var raw *http.Response
	params := responses.ResponseNewParams{
		Model:           "gpt-4o-mini",
		Instructions:    openai.String("abcd"),
		MaxOutputTokens: openai.Int(20),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("first question", responses.EasyInputMessageRoleUser),
			responses.ResponseInputItemParamOfMessage("an answer", responses.EasyInputMessageRoleAssistant),
			responses.ResponseInputItemParamOfMessage(responses.ResponseInputMessageContentListParam{
				responses.ResponseInputContentParamOfInputText("the last "),
				responses.ResponseInputContentParamOfInputText("question"),
			}, responses.EasyInputMessageRoleUser),
		}},
	}
	resp, err := f.client.Responses.New(context.Background(), params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.OutputText(), OutputText("the last question", 20); got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	// chars: 4 + 14 + 9 + 17 = 44 -> 11 tokens, + 3 messages * 4 = 23.
	if resp.Usage.InputTokens != 23 || resp.Usage.OutputTokens != 20 {
		t.Errorf("usage = %+v", resp.Usage)
	}
	if resp.Instructions.OfString != "abcd" || resp.MaxOutputTokens != 20 {
		t.Errorf("instructions %q max_output_tokens %d", resp.Instructions.OfString, resp.MaxOutputTokens)
	}
	// Unlimited: no rate-limit headers at all.
	if h := raw.Header.Get("x-ratelimit-limit-requests") + raw.Header.Get("x-ratelimit-limit-tokens"); h != "" {
		t.Errorf("rate-limit headers without limits: %q", h)
	}
	if got := f.fake.Stats().TokensCharged; got != 23+20 {
		t.Errorf("tokens charged = %d, want %d (input + max_output_tokens)", got, 43)
	}
}

func TestResponsesStreaming(t *testing.T) {
	f := setup(t, Config{RPM: 60})
	var raw *http.Response
	stream := f.client.Responses.NewStreaming(context.Background(), respParams("stream me"), option.WithResponseInto(&raw))
	var types []string
	var text strings.Builder
	var completed *responses.Response
	for i := int64(0); stream.Next(); i++ {
		ev := stream.Current()
		if ev.SequenceNumber != i {
			t.Errorf("event %d has sequence_number %d", i, ev.SequenceNumber)
		}
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			r := ev.AsResponseCompleted().Response
			completed = &r
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	want := OutputText("stream me", OutputTokensDefault)
	if text.String() != want {
		t.Errorf("accumulated %q, want %q", text.String(), want)
	}
	wantTypes := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	for range strings.Fields(want) {
		wantTypes = append(wantTypes, "response.output_text.delta")
	}
	wantTypes = append(wantTypes, "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed")
	if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
		t.Errorf("events:\n%v\nwant\n%v", types, wantTypes)
	}
	if completed == nil || completed.Usage.OutputTokens != OutputTokensDefault || completed.Usage.InputTokens != 3+4 || completed.OutputText() != want {
		t.Errorf("completed = %+v", completed)
	}
	wantHeader(t, raw.Header, "x-ratelimit-remaining-requests", "59")
	if ct := raw.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("content-type %q", ct)
	}
}

func TestChatCompletions(t *testing.T) {
	f := setup(t, Config{})
	p := chatParams("hi there")
	p.MaxTokens = openai.Int(5)
	c, err := f.client.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Object != "chat.completion" || len(c.Choices) != 1 {
		t.Fatalf("completion = %+v", c)
	}
	if got, want := c.Choices[0].Message.Content, OutputText("hi there", 5); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if c.Choices[0].FinishReason != "length" {
		t.Errorf("finish_reason %q, want length (capped by max_tokens)", c.Choices[0].FinishReason)
	}
	// chars 8 + 8 = 16 -> 4 tokens, + 2 messages * 4 = 12.
	if u := c.Usage; u.PromptTokens != 12 || u.CompletionTokens != 5 || u.TotalTokens != 17 {
		t.Errorf("usage = %+v", u)
	}
}

func TestChatCompletionsStreaming(t *testing.T) {
	f := setup(t, Config{})
	p := chatParams("stream chat")
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := f.client.Chat.Completions.NewStreaming(context.Background(), p)
	acc := openai.ChatCompletionAccumulator{}
	var usageChunks int
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		if ch.Usage.TotalTokens > 0 {
			usageChunks++
			if len(ch.Choices) != 0 {
				t.Errorf("usage chunk has %d choices, want 0", len(ch.Choices))
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := acc.Choices[0].Message.Content, OutputText("stream chat", OutputTokensDefault); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if acc.Choices[0].FinishReason != "stop" {
		t.Errorf("finish_reason %q", acc.Choices[0].FinishReason)
	}
	if usageChunks != 1 || acc.Usage.CompletionTokens != OutputTokensDefault || acc.Usage.PromptTokens != 3+2+8 {
		t.Errorf("usage chunks %d, usage %+v", usageChunks, acc.Usage)
	}
}

func TestRateLimitAndRefill(t *testing.T) {
	f := setup(t, Config{RPM: 2})
	ctx := context.Background()
	for i := range 2 {
		if _, err := f.client.Responses.New(ctx, respParams("x")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var raw *http.Response
	_, err := f.client.Responses.New(ctx, respParams("x"), option.WithResponseInto(&raw))
	e := apiErr(t, err, 429, "rate_limit_exceeded")
	if e.Type != "requests" || !strings.Contains(e.Message, "on requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in 30s.") {
		t.Errorf("type %q message %q", e.Type, e.Message)
	}
	// 2 per minute: one request refills in 30s.
	wantHeader(t, raw.Header, "retry-after", "30")
	wantHeader(t, raw.Header, "retry-after-ms", "30000")
	wantHeader(t, raw.Header, "x-ratelimit-remaining-requests", "0")
	wantHeader(t, raw.Header, "x-ratelimit-reset-requests", "1m0s")

	// Continuous refill: 15s buys half a request, not enough; 30s buys one.
	f.clk.Advance(15 * time.Second)
	_, err = f.client.Responses.New(ctx, respParams("x"), option.WithResponseInto(&raw))
	apiErr(t, err, 429, "rate_limit_exceeded")
	wantHeader(t, raw.Header, "retry-after-ms", "15000")
	wantHeader(t, raw.Header, "x-ratelimit-reset-requests", "45s")
	f.clk.Advance(15 * time.Second)
	if _, err := f.client.Responses.New(ctx, respParams("x"), option.WithResponseInto(&raw)); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	wantHeader(t, raw.Header, "x-ratelimit-remaining-requests", "0")

	st := f.fake.Stats()
	if st.Requests != 5 || st.OK != 3 || st.RateLimited != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTokenRateLimit(t *testing.T) {
	// Chat, since max_tokens may go below the Responses API's minimum of 16.
	f := setup(t, Config{TPM: 6000, Burst: time.Second}) // capacity 100, 100 tokens/s
	ctx := context.Background()
	p := chatParams("abcd")      // input ceil(12/4)+8 = 11
	p.MaxTokens = openai.Int(39) // cost 50
	for i := range 2 {
		if _, err := f.client.Chat.Completions.New(ctx, p); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	var raw *http.Response
	_, err := f.client.Chat.Completions.New(ctx, p, option.WithResponseInto(&raw))
	e := apiErr(t, err, 429, "rate_limit_exceeded")
	if e.Type != "tokens" || !strings.Contains(e.Message, "tokens per min (TPM): Limit 6000, Used 100, Requested 50. Please try again in 500ms.") {
		t.Errorf("type %q message %q", e.Type, e.Message)
	}
	wantHeader(t, raw.Header, "retry-after", "1")
	wantHeader(t, raw.Header, "retry-after-ms", "500")
	if got := f.fake.Stats().TokensCharged; got != 100 {
		t.Errorf("tokens charged = %d, want 100 (a rejected request is not charged)", got)
	}
	f.clk.Advance(500 * time.Millisecond)
	if _, err := f.client.Chat.Completions.New(ctx, p, option.WithResponseInto(&raw)); err != nil {
		t.Fatal(err)
	}
	wantHeader(t, raw.Header, "x-ratelimit-remaining-tokens", "0")
	wantHeader(t, raw.Header, "x-ratelimit-reset-tokens", "1s")
	if raw.Header.Get("x-ratelimit-limit-requests") != "" {
		t.Error("request headers sent without an RPM limit")
	}

	// A cost above the bucket's capacity can never pass.
	f.clk.Advance(time.Minute)
	p.MaxTokens = openai.Int(200)
	_, err = f.client.Chat.Completions.New(ctx, p)
	e = apiErr(t, err, 429, "rate_limit_exceeded")
	if !strings.HasPrefix(e.Message, "Request too large for gpt-4o-mini in organization org-fake on tokens per min (TPM): Limit 6000, Requested 211.") {
		t.Errorf("message %q", e.Message)
	}
}

func TestInsufficientQuotaPropagation(t *testing.T) {
	f := setup(t, Config{SlowBy: time.Hour})
	entered := make(chan struct{}, 1)
	f.fake.onLatency = func() { entered <- struct{}{} }
	ctx := context.Background()

	// A request admitted in slow mode sits in its latency...
	f.fake.SetMode(ModeSlow, 0)
	slowCtx, cancelSlow := context.WithCancel(ctx)
	slowDone := make(chan error, 1)
	go func() {
		_, err := f.client.Responses.New(slowCtx, respParams("slow"), option.WithHeader(TaskIDHeader, "task-slow"))
		slowDone <- err
	}()
	<-entered

	// ...while the account runs out of quota.
	f.fake.SetMode(ModeInsufficientQuota, 0)
	var raw *http.Response
	_, err := f.client.Responses.New(ctx, respParams("x"), option.WithHeader(TaskIDHeader, "task-a"), option.WithResponseInto(&raw))
	e := apiErr(t, err, 429, "insufficient_quota")
	if e.Type != "insufficient_quota" || !strings.HasPrefix(e.Message, "You exceeded your current quota") {
		t.Errorf("type %q message %q", e.Type, e.Message)
	}
	if raw.Header.Get("retry-after") != "" {
		t.Error("insufficient_quota must not carry retry-after")
	}
	for range 2 {
		_, err = f.client.Chat.Completions.New(ctx, chatParams("x"), option.WithHeader(TaskIDHeader, "task-b"))
		apiErr(t, err, 429, "insufficient_quota")
	}
	f.fake.SetMode(ModeNormal, 0)
	if _, err := f.client.Responses.New(ctx, respParams("x"), option.WithHeader(TaskIDHeader, "task-b")); err != nil {
		t.Fatal(err)
	}

	cancelSlow()
	if err := <-slowDone; !errors.Is(err, context.Canceled) {
		t.Errorf("slow request err = %v, want context.Canceled", err)
	}
	f.srv.Close() // waits for the slow handler to return
	st := f.fake.Stats()
	if st.QuotaErrors != 3 || st.FirstQuotaErrorAt != "2025-01-02T03:04:05Z" {
		t.Errorf("quota errors %d at %q", st.QuotaErrors, st.FirstQuotaErrorAt)
	}
	if st.InFlightAtFirstQuotaError != 1 {
		t.Errorf("in_flight_at_first_quota_error = %d, want 1", st.InFlightAtFirstQuotaError)
	}
	if st.RequestsAfterFirstQuotaError != 2 {
		t.Errorf("requests_after_first_quota_error = %d, want 2 (the normal-mode one is not counted)", st.RequestsAfterFirstQuotaError)
	}
	if st.Requests != 5 || st.OK != 1 || st.Canceled != 1 || st.InFlight != 0 {
		t.Errorf("requests %d ok %d canceled %d in flight %d", st.Requests, st.OK, st.Canceled, st.InFlight)
	}
	want := map[string]int{"task-slow": 1, "task-a": 1, "task-b": 3}
	for k, v := range want {
		if st.ByTask[k] != v {
			t.Errorf("by_task = %v, want %v", st.ByTask, want)
			break
		}
	}
}

func TestServerErrorMode(t *testing.T) {
	f := setup(t, Config{ServerErrorStatus: 503, TPM: 100_000})
	f.fake.SetMode(ModeServerError, 0)
	var raw *http.Response
	_, err := f.client.Responses.New(context.Background(), respParams("x"), option.WithResponseInto(&raw))
	e := apiErr(t, err, 503, "")
	if e.Type != "server_error" || !strings.HasPrefix(e.Message, "The server had an error") {
		t.Errorf("type %q message %q", e.Type, e.Message)
	}
	if raw.Header.Get("x-ratelimit-remaining-tokens") == "" || raw.Header.Get("x-request-id") == "" {
		t.Errorf("headers = %v", raw.Header)
	}
	if st := f.fake.Stats(); st.ServerErrors != 1 || st.TokensCharged == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestModeRevertsOnClock(t *testing.T) {
	f := setup(t, Config{})
	f.fake.SetMode(ModeServerError, 5*time.Second)
	_, err := f.client.Responses.New(context.Background(), respParams("x"))
	apiErr(t, err, 500, "")
	f.clk.Advance(5 * time.Second)
	if f.fake.Mode() != ModeNormal {
		t.Fatalf("mode = %s after the duration", f.fake.Mode())
	}
	if _, err := f.client.Responses.New(context.Background(), respParams("x")); err != nil {
		t.Fatal(err)
	}
}

func TestResetMode(t *testing.T) {
	f := setup(t, Config{})
	f.fake.SetMode(ModeReset, 0)
	_, err := f.client.Responses.New(context.Background(), respParams("x"))
	var e *openai.Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if st := f.fake.Stats(); st.Resets != 1 || st.OK != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTruncateMode(t *testing.T) {
	f := setup(t, Config{})
	f.fake.SetMode(ModeTruncate, 0)
	ctx := context.Background()

	t.Run("responses stream", func(t *testing.T) {
		stream := f.client.Responses.NewStreaming(ctx, respParams("cut me"))
		var completed, deltas int
		for stream.Next() {
			switch stream.Current().Type {
			case "response.completed":
				completed++
			case "response.output_text.delta":
				deltas++
			}
		}
		if completed != 0 || deltas == 0 || deltas >= OutputTokensDefault {
			t.Errorf("completed %d deltas %d: want a stream cut mid-way", completed, deltas)
		}
		if stream.Err() == nil {
			t.Error("want a stream error for the dropped connection")
		}
	})
	t.Run("chat stream", func(t *testing.T) {
		stream := f.client.Chat.Completions.NewStreaming(ctx, chatParams("cut me"))
		for stream.Next() {
			if len(stream.Current().Choices) > 0 && stream.Current().Choices[0].FinishReason != "" {
				t.Error("got the final chunk")
			}
		}
		if stream.Err() == nil {
			t.Error("want a stream error")
		}
	})
	t.Run("non-stream", func(t *testing.T) {
		if _, err := f.client.Responses.New(ctx, respParams("cut me")); err == nil {
			t.Error("want an error for a cut body")
		}
	})
	if st := f.fake.Stats(); st.Truncated != 3 || st.OK != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestCanceledRequestFreesSlot(t *testing.T) {
	f := setup(t, Config{Latency: time.Hour})
	entered := make(chan struct{}, 1)
	f.fake.onLatency = func() { entered <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.client.Responses.New(ctx, respParams("x"))
		done <- err
	}()
	<-entered
	if st := f.fake.Stats(); st.InFlight != 1 || st.MaxInFlight != 1 {
		t.Errorf("in flight %d max %d, want 1 1", st.InFlight, st.MaxInFlight)
	}
	cancel()
	<-done
	// The handler notices the cancellation on its own goroutine; closing
	// the server waits for it to return.
	f.srv.Close()
	if st := f.fake.Stats(); st.InFlight != 0 || st.Canceled != 1 || st.Requests != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRequestErrors(t *testing.T) {
	f := setup(t, Config{RPM: 10})
	ctx := context.Background()

	_, err := f.client.Responses.New(ctx, respParams("x"), option.WithAPIKey("sk-wrong-key-123456"))
	if e := apiErr(t, err, 401, "invalid_api_key"); strings.Contains(e.Message, "sk-wrong-key-123456") {
		t.Errorf("message leaks the key: %q", e.Message)
	}
	p := respParams("x")
	p.Model = "bad-model"
	_, err = f.client.Responses.New(ctx, p)
	apiErr(t, err, 404, "model_not_found")
	p.Model = ""
	_, err = f.client.Responses.New(ctx, p)
	apiErr(t, err, 400, "missing_required_parameter")
	p = respParams("x")
	p.MaxOutputTokens = openai.Int(5)
	_, err = f.client.Responses.New(ctx, p)
	apiErr(t, err, 400, "integer_below_min_value")

	raw := func(path, auth, body string) (*http.Response, map[string]map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	tests := []struct {
		name, path, auth, body string
		status                 int
		typ                    string
	}{
		{"no key", "/v1/responses", "", `{"model":"m","input":"x"}`, 401, "invalid_request_error"},
		{"bad json", "/v1/responses", "Bearer " + testKey, `{"model":`, 400, "invalid_request_error"},
		{"missing input", "/responses", "Bearer " + testKey, `{"model":"m"}`, 400, "invalid_request_error"},
		{"missing messages", "/chat/completions", "Bearer " + testKey, `{"model":"m"}`, 400, "invalid_request_error"},
		{"unknown path", "/v1/embeddings", "Bearer " + testKey, `{}`, 404, "invalid_request_error"},
		{"no v1 prefix works", "/chat/completions", "Bearer " + testKey, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := raw(tc.path, tc.auth, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, out)
			}
			if tc.typ != "" && out["error"]["type"] != tc.typ {
				t.Errorf("error = %v", out["error"])
			}
			if resp.Header.Get("x-request-id") == "" {
				t.Error("no x-request-id")
			}
			if tc.path != "/v1/embeddings" && resp.Header.Get("x-ratelimit-limit-requests") != "10" {
				t.Error("rate-limit headers missing on an API answer")
			}
		})
	}
	st := f.fake.Stats()
	if st.AuthErrors != 2 || st.BadRequests != 6 || st.OK != 1 || st.Requests != 9 || st.TokensCharged == 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestAdminEndpoints(t *testing.T) {
	f := setup(t, Config{})
	post := func(path, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(f.srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	getStats := func() Stats {
		t.Helper()
		resp, err := http.Get(f.srv.URL + "/_fake/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	if resp := post("/_fake/mode", `{"mode":"bogus"}`); resp.StatusCode != 400 {
		t.Errorf("bogus mode: status %d", resp.StatusCode)
	}
	if resp := post("/_fake/mode", `{"mode":"insufficient_quota","for":"5s"}`); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, err := f.client.Responses.New(context.Background(), respParams("x"), option.WithHeader(TaskIDHeader, "t1"))
	apiErr(t, err, 429, "insufficient_quota")
	f.clk.Advance(5 * time.Second)
	if _, err := f.client.Responses.New(context.Background(), respParams("x"), option.WithHeader(TaskIDHeader, "t1")); err != nil {
		t.Fatalf("mode did not revert: %v", err)
	}

	st := getStats()
	if st.Requests != 2 || st.QuotaErrors != 1 || st.OK != 1 || st.ByTask["t1"] != 2 || st.FirstQuotaErrorAt == "" {
		t.Errorf("stats = %+v", st)
	}
	if resp := post("/_fake/reset", ""); resp.StatusCode != 200 {
		t.Fatalf("reset status %d", resp.StatusCode)
	}
	if st := getStats(); st.Requests != 0 || len(st.ByTask) != 0 || st.FirstQuotaErrorAt != "" {
		t.Errorf("after reset: %+v", st)
	}
	resp, err := http.Get(f.srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero ok", Config{}, ""},
		{"negative rpm", Config{RPM: -1}, "RPM"},
		{"negative tpm", Config{TPM: -1}, "TPM"},
		{"negative burst", Config{Burst: -time.Second}, "Burst"},
		{"negative jitter", Config{Jitter: -1}, "Jitter"},
		{"4xx server error", Config{ServerErrorStatus: 429}, "ServerErrorStatus"},
		{"negative output", Config{OutputTokens: -1}, "OutputTokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want error mentioning %q", err, tc.wantErr)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Burst != time.Minute || d.OutputTokens != 16 || d.ServerErrorStatus != 500 || d.SlowBy != 30*time.Second || d.Clock == nil {
		t.Errorf("defaults = %+v", d)
	}
}
