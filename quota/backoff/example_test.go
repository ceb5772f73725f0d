package backoff_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/promptq/promptq/quota/backoff"
)

func ExamplePolicy_Delay() {
	// DefaultPolicy(KindRateLimit) without its jitter, for a stable output.
	p := backoff.Policy{Base: time.Second, Cap: time.Minute}
	for attempt := range 8 {
		fmt.Println(attempt, p.Delay(attempt, 0))
	}
	// A retry-after from the provider is honoured even beyond the cap.
	fmt.Println(p.Delay(0, 2*time.Minute))
	// Output:
	// 0 1s
	// 1 2s
	// 2 4s
	// 3 8s
	// 4 16s
	// 5 32s
	// 6 1m0s
	// 7 1m0s
	// 2m0s
}

func ExampleClassify() {
	// A provider that is out of tokens for the minute.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Ratelimit-Remaining-Tokens", "0")
		w.Header().Set("X-Ratelimit-Reset-Tokens", "6m0s")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached for tokens per min. Please try again in 6m0s.",`+
			`"type":"tokens","param":null,"code":"rate_limit_exceeded"}}`)
	}))
	defer srv.Close()

	client := openai.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey("test"), option.WithMaxRetries(0))
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	})

	e := backoff.Classify(err, time.Now())
	fmt.Println(e.Kind, e.StatusCode, e.Code, e.RetryAfter, e.Permanent)
	fmt.Println(e)
	fmt.Println("counts as failure:", backoff.IsFailure(e))
	// Output:
	// rate_limit 429 rate_limit_exceeded 6m0s false
	// rate_limit: status 429 (rate_limit_exceeded), retry after 6m0s
	// counts as failure: false
}
