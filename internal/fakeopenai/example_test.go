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

func ExampleNewAccounts() {
	accts, err := fakeopenai.NewAccounts(fakeopenai.Config{OutputTokens: 4}, []fakeopenai.AccountSpec{
		{Name: "east", RPM: 300, TPM: 24_000},
		{Name: "west", RPM: 300, TPM: 24_000},
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(accts)
	defer srv.Close()
	client := func(name string) openai.Client {
		return openai.NewClient(option.WithBaseURL(srv.URL+"/"+name+"/v1"), option.WithAPIKey("sk-any"), option.WithMaxRetries(0))
	}
	east, west := client("east"), client("west")
	params := responses.ResponseNewParams{
		Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	}

	// east runs out of quota; west carries on.
	accts.Account("east").SetMode(fakeopenai.ModeInsufficientQuota, 0)
	_, err = east.Responses.New(context.Background(), params)
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		fmt.Println("east:", apiErr.StatusCode, apiErr.Code)
	}
	resp, err := west.Responses.New(context.Background(), params)
	if err != nil {
		panic(err)
	}
	fmt.Println("west:", resp.OutputText())
	for _, name := range accts.Names() {
		st := accts.Account(name).Stats()
		fmt.Println(name, "requests:", st.Requests, "quota errors:", st.QuotaErrors)
	}
	// Output:
	// east: 429 insufficient_quota
	// west: echo: hi lorem ipsum
	// east requests: 1 quota errors: 1
	// west requests: 1 quota errors: 0
}
