package provider

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// seen is what a test server received.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Model               string
}

// recorder is an httptest server that answers every request with a chat
// completion (or a response for /responses) and records what it received.
func recorder(t *testing.T) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct{ Model string }
		_ = json.Unmarshal(body, &b)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), b.Model})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-ratelimit-remaining-requests", "99")
		if strings.HasSuffix(r.URL.Path, "/responses") {
			_, _ = io.WriteString(w, `{"id":"resp_1","object":"response","status":"completed","model":"`+b.Model+`","output":[{"type":"message","id":"m1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":0}}}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"`+b.Model+`","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

// An Azure account sends a chat completion to its deployment's path with
// the api-version query and the key in api-key (not Authorization); a model
// without a deployment is sent under its own name; Responses goes to
// /openai/responses with the deployment as the body's model.
func TestAzure(t *testing.T) {
	t.Parallel()
	srv, got := recorder(t)
	c := New(Config{API: APIAzure, BaseURL: srv.URL, APIKey: "azure-key", APIVersion: "2024-10-21",
		Deployments: map[string]string{"gpt-4o-mini": "my-4o-mini-deployment"}})
	ctx := context.Background()
	for _, req := range []Request{
		{Endpoint: EndpointChat, Model: "gpt-4o-mini", Text: "hello", TaskID: "t-1"},
		{Endpoint: EndpointChat, Model: "gpt-4o", Text: "hello"},
		{Endpoint: EndpointResponses, Model: "gpt-4o-mini", Text: "hello"},
	} {
		resp, err := c.Call(ctx, req, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Endpoint, req.Model, err)
		}
		if resp.Text != "hi" || resp.Usage == nil || resp.Usage.TotalTokens != 4 || resp.Header.Get("x-ratelimit-remaining-requests") != "99" {
			t.Fatalf("%s %s: response %+v", req.Endpoint, req.Model, resp)
		}
	}
	want := []struct{ path, model string }{
		{"/openai/deployments/my-4o-mini-deployment/chat/completions", "my-4o-mini-deployment"},
		{"/openai/deployments/gpt-4o/chat/completions", "gpt-4o"},
		{"/openai/responses", "my-4o-mini-deployment"},
	}
	reqs := got()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d (openai-go retries must be off)", len(reqs), len(want))
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.Path != want[i].path || r.Query != "api-version=2024-10-21" || r.Model != want[i].model {
			t.Errorf("request %d: %s %s?%s model %q, want POST %s?api-version=2024-10-21 model %q",
				i, r.Method, r.Path, r.Query, r.Model, want[i].path, want[i].model)
		}
		if r.Header.Get("Api-Key") != "azure-key" || r.Header.Get("Authorization") != "" {
			t.Errorf("request %d: api-key %q, Authorization %q", i, r.Header.Get("Api-Key"), r.Header.Get("Authorization"))
		}
	}
	if reqs[0].Header.Get("X-Promptq-Task-Id") != "t-1" {
		t.Errorf("task id header lost: %v", reqs[0].Header)
	}
}

// openai mode (API "" or "openai") is unchanged: Bearer key, the base URL's
// path, the model as given, no api-version; Deployments are ignored.
func TestOpenAIModeUnchanged(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"", APIOpenAI} {
		srv, got := recorder(t)
		c := New(Config{API: api, BaseURL: srv.URL + "/v1", APIKey: "sk-test", Deployments: map[string]string{"gpt-4o-mini": "dep"}})
		if _, err := c.Call(context.Background(), Request{Endpoint: EndpointChat, Model: "gpt-4o-mini", Text: "hello"}, nil); err != nil {
			t.Fatal(err)
		}
		r := got()[0]
		if r.Path != "/v1/chat/completions" || r.Query != "" || r.Model != "gpt-4o-mini" ||
			r.Header.Get("Authorization") != "Bearer sk-test" || r.Header.Get("Api-Key") != "" {
			t.Fatalf("api %q: %s?%s model %q headers %v", api, r.Path, r.Query, r.Model, r.Header)
		}
	}
}

// An Azure error answer is seen like an OpenAI one: status, headers, body.
func TestAzureErrorAnswer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation have exceeded the rate limit."}}`)
	}))
	t.Cleanup(srv.Close)
	c := New(Config{API: APIAzure, BaseURL: srv.URL, APIKey: "azure-key", APIVersion: "2024-10-21"})
	resp, err := c.Call(context.Background(), Request{Endpoint: EndpointChat, Model: "m", Text: "hello"}, nil)
	if err == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" || len(resp.ErrorBody) == 0 {
		t.Fatalf("err %v, response %+v", err, resp)
	}
	if strings.Contains(err.Error(), "azure-key") {
		t.Fatalf("error shows the key: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"openai", Config{BaseURL: "https://api.openai.com/v1", APIKey: "k"}, ""},
		{"openai explicit", Config{API: APIOpenAI, BaseURL: "http://10.0.0.1:8000/v1"}, ""},
		{"azure", Config{API: APIAzure, BaseURL: "https://x.openai.azure.com", APIVersion: "2024-10-21"}, ""},
		{"azure loopback http", Config{API: APIAzure, BaseURL: "http://127.0.0.1:9000", APIVersion: "v"}, ""},
		{"no base url", Config{}, "provider: BaseURL must be an absolute http or https URL"},
		{"unknown api", Config{API: "bedrock", BaseURL: "https://x"}, `provider: API must be "openai" or "azure", got "bedrock"`},
		{"azure without version", Config{API: APIAzure, BaseURL: "https://x"}, "provider: APIVersion is required with API azure"},
		{"azure remote http", Config{API: APIAzure, BaseURL: "http://x.example", APIVersion: "v"}, "provider: BaseURL must be https with API azure (http only to a loopback address)"},
		{"deployments without azure", Config{BaseURL: "https://x", Deployments: map[string]string{"a": "b"}}, "provider: APIVersion and Deployments are only for API azure"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && err.Error() != tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}
