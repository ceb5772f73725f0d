package provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/quota/backoff"
)

func setup(t *testing.T, cfg fakeopenai.Config) (*Client, *fakeopenai.Server) {
	t.Helper()
	fake := fakeopenai.New(cfg)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return New(Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test"}), fake
}

// Both endpoints in both modes return text, usage and the rate-limit
// headers; a stream's headers arrive when it opens, before the text.
func TestCallEndpointsAndModes(t *testing.T) {
	c, _ := setup(t, fakeopenai.Config{RPM: 600, TPM: 100000})
	for _, endpoint := range []string{EndpointResponses, EndpointChat} {
		for _, stream := range []bool{false, true} {
			var opened http.Header
			resp, err := c.Call(context.Background(), Request{
				Endpoint: endpoint, Model: "gpt-4o-mini", Text: "hello there", MaxOutputTokens: 32, Stream: stream, TaskID: "t-1",
			}, func(h http.Header) { opened = h })
			if err != nil {
				t.Fatalf("%s stream=%v: %v", endpoint, stream, err)
			}
			if resp.Text == "" || resp.Usage == nil || resp.Usage.InputTokens <= 0 || resp.Usage.TotalTokens <= 0 {
				t.Fatalf("%s stream=%v: text %q usage %+v", endpoint, stream, resp.Text, resp.Usage)
			}
			if opened.Get("x-ratelimit-remaining-requests") == "" || resp.Header.Get("x-ratelimit-limit-tokens") != "100000" {
				t.Fatalf("%s stream=%v: rate-limit headers not seen (open %v)", endpoint, stream, opened)
			}
		}
	}
}

// A stream cut before its final event is an incomplete stream: a network
// failure whose outcome is unknown, never a success.
func TestTruncatedStreamIsNetworkFailure(t *testing.T) {
	for _, endpoint := range []string{EndpointResponses, EndpointChat} {
		c, fake := setup(t, fakeopenai.Config{OutputTokens: 64})
		fake.SetMode(fakeopenai.ModeTruncate, time.Minute)
		_, err := c.Call(context.Background(), Request{Endpoint: endpoint, Model: "m", Text: "hello", MaxOutputTokens: 64, Stream: true}, nil)
		if err == nil {
			t.Fatalf("%s: truncated stream reported success", endpoint)
		}
		if k := backoff.Classify(err, time.Now()); k.Kind != backoff.KindNetwork {
			t.Fatalf("%s: truncated stream classified %s (%v), want network", endpoint, k.Kind, err)
		}
		if !errors.Is(err, ErrIncompleteStream) {
			t.Logf("%s: cut by the transport: %v", endpoint, err)
		}
	}
}

// A stream that ends cleanly but without response.completed (a proxy that
// closes early) is incomplete too.
func TestStreamWithoutCompletedEvent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\",\"sequence_number\":1}\n\n"))
	}))
	t.Cleanup(srv.Close)
	c := New(Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test"})
	resp, err := c.Call(context.Background(), Request{Model: "m", Text: "hello", Stream: true}, nil)
	if !errors.Is(err, ErrIncompleteStream) {
		t.Fatalf("err = %v, want ErrIncompleteStream", err)
	}
	if resp.Text != "hi" || resp.Usage != nil {
		t.Fatalf("partial response %+v", resp)
	}
	if backoff.Classify(err, time.Now()).Kind != backoff.KindNetwork {
		t.Fatal("incomplete stream must classify as network")
	}
}

// A stream cut short by max_output_tokens ends with response.incomplete: a
// final answer with partial text and usage, like the non-streaming call.
func TestStreamIncompleteIsAnAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"partial\",\"sequence_number\":1}\n\n" +
			"event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"incomplete\",\"model\":\"m\",\"output\":[{\"type\":\"message\",\"id\":\"msg_1\",\"status\":\"incomplete\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"partial\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":5,\"output_tokens\":16,\"total_tokens\":21,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens_details\":{\"reasoning_tokens\":0}}}}\n\n"))
	}))
	t.Cleanup(srv.Close)
	c := New(Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test"})
	resp, err := c.Call(context.Background(), Request{Model: "m", Text: "hello", Stream: true, MaxOutputTokens: 16}, nil)
	if err != nil {
		t.Fatalf("incomplete (length-capped) stream: %v", err)
	}
	if resp.Text != "partial" || resp.Usage == nil || resp.Usage.OutputTokens != 16 {
		t.Fatalf("response %+v usage %+v", resp, resp.Usage)
	}
}
