package fakeopenai_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/promptq/promptq/internal/fakeopenai"
)

func Example() {
	fake := fakeopenai.New(fakeopenai.Config{RPM: 1, OutputTokens: 8})
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("sk-any"), option.WithMaxRetries(0))

	params := responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("What is a token bucket?")},
	}
	resp, err := client.Responses.New(context.Background(), params)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.OutputText())
	fmt.Println("input tokens:", resp.Usage.InputTokens, "output tokens:", resp.Usage.OutputTokens)

	// RPM 1: the second request within the minute is rate limited.
	_, err = client.Responses.New(context.Background(), params)
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code, apiErr.Response.Header.Get("retry-after"))
	}
	fmt.Printf("%+v\n", fake.Stats().RateLimited)
	// Output:
	// echo: What is a token bucket? lorem ipsum
	// input tokens: 10 output tokens: 8
	// 429 rate_limit_exceeded 60
	// 1
}
