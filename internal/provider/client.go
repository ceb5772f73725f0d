// Package provider is promptq's call path to an OpenAI-compatible API: one
// function that sends a prompt through openai-go (Responses or Chat
// Completions, streaming or not) and hands back the text, the usage and the
// response headers, so that quota code sees what the provider said.
//
// It speaks OpenAI's API (the default) or Azure OpenAI's:
//
//	c := provider.New(provider.Config{BaseURL: "https://api.openai.com/v1", APIKey: key})
//	c := provider.New(provider.Config{
//		API: provider.APIAzure, BaseURL: "https://NAME.openai.azure.com", APIKey: key,
//		APIVersion: "2024-10-21", Deployments: map[string]string{"gpt-4o-mini": "my-4o-mini"},
//	})
//	resp, err := c.Call(ctx, provider.Request{Endpoint: provider.EndpointChat, Model: "gpt-4o-mini", Text: "hi"}, nil)
package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/promptq/promptq/quota/backoff"
)

// Endpoints.
const (
	EndpointResponses = "responses"
	EndpointChat      = "chat_completions"
)

// Message is one chat message.
type Message struct{ Role, Content string }

// Request is one prompt to send.
type Request struct {
	Endpoint        string // EndpointResponses (default) or EndpointChat
	Model           string
	Instructions    string
	Text            string    // plain input, used when Messages is nil
	Messages        []Message // chat input
	MaxOutputTokens int64     // 0 = provider default
	Stream          bool
	Metadata        map[string]string
	TaskID          string // sent as X-Promptq-Task-Id so a provider log can tell duplicates
}

// Usage is the provider's token count for one response.
type Usage struct{ InputTokens, OutputTokens, TotalTokens int64 }

// Response is what came back. Header is set as soon as the provider answered
// (for a stream: when it opened), also when err is non-nil.
type Response struct {
	Text       string
	Usage      *Usage // nil when the provider never reported usage
	ResponseID string
	Model      string
	Header     http.Header
	StatusCode int
	// ErrorBody is the raw body of an error answer (status >= 400), at most
	// backoff.MaxBodyBytes: openai-go keeps no message when the body is not
	// OpenAI's error object.
	ErrorBody []byte
	// ErrorEventType and ErrorEventData are the stream event that ended a
	// stream with an error (Responses "error" or "response.failed"), for
	// classification and the message in results.
	ErrorEventType string
	ErrorEventData []byte
}

// Seen is what the call saw besides its error, for backoff.ClassifyCall.
func (r *Response) Seen() backoff.Seen {
	if r == nil {
		return backoff.Seen{}
	}
	return backoff.Seen{StatusCode: r.StatusCode, Header: r.Header, Body: r.ErrorBody,
		EventType: r.ErrorEventType, EventData: r.ErrorEventData}
}

// ErrIncompleteStream is returned when a stream ends without its final
// event. It wraps io.ErrUnexpectedEOF, so it classifies as a network failure
// whose outcome is unknown (the provider may have charged the request).
var ErrIncompleteStream = fmt.Errorf("provider: stream ended before completion: %w", io.ErrUnexpectedEOF)

// Client sends prompts. It is safe for concurrent use.
type Client struct {
	oa          openai.Client
	deployments map[string]string // model -> Azure deployment
}

// New returns a Client with openai-go's own retries off: asynq owns retries.
// A Config that fails Validate gives a Client whose calls fail.
func New(cfg Config) *Client {
	var opts []option.RequestOption
	if cfg.API == APIAzure {
		opts = append(opts,
			azure.WithEndpoint(cfg.BaseURL, cfg.APIVersion),
			azure.WithAPIKey(cfg.APIKey),
		)
		if u, err := url.Parse(cfg.BaseURL); err == nil && u.Scheme == "http" && IsLoopback(u.Hostname()) {
			// The key goes to this host only, which is this machine.
			opts = append(opts, azure.WithUnsafeAllowHTTP())
		}
	} else {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL), option.WithAPIKey(cfg.APIKey))
	}
	opts = append(opts, option.WithMaxRetries(0))
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.Timeout > 0 {
		opts = append(opts, option.WithRequestTimeout(cfg.Timeout))
	}
	c := &Client{oa: openai.NewClient(opts...)}
	if cfg.API == APIAzure {
		c.deployments = cfg.Deployments
	}
	return c
}

// Call sends req. onOpen, if not nil, is called with the response headers as
// soon as they arrive, before a stream's first event.
func (c *Client) Call(ctx context.Context, req Request, onOpen func(http.Header)) (*Response, error) {
	if d, ok := c.deployments[req.Model]; ok {
		req.Model = d // Azure routes by the body's model: /openai/deployments/{model}/...
	}
	var raw *http.Response
	opts := []option.RequestOption{option.WithResponseInto(&raw)}
	if req.TaskID != "" {
		opts = append(opts, option.WithHeader("X-Promptq-Task-Id", req.TaskID))
	}
	out := &Response{}
	opened := func() {
		if raw != nil && out.Header == nil {
			out.Header = raw.Header
			out.StatusCode = raw.StatusCode
			if onOpen != nil {
				onOpen(raw.Header)
			}
		}
	}
	var err error
	switch {
	case req.Endpoint == EndpointChat && req.Stream:
		err = c.chatStream(ctx, req, opts, out, opened)
	case req.Endpoint == EndpointChat:
		err = c.chat(ctx, req, opts, out)
	case req.Stream:
		err = c.responsesStream(ctx, req, opts, out, opened)
	default:
		err = c.responses(ctx, req, opts, out)
	}
	opened()
	var apiErr *openai.Error
	if errors.As(err, &apiErr) && apiErr.Response != nil && out.Header == nil {
		out.Header = apiErr.Response.Header
		out.StatusCode = apiErr.StatusCode
	}
	if err != nil && raw != nil && raw.StatusCode >= 400 {
		// openai-go puts the error body back into the response it read it
		// from, also when it could not decode it.
		out.StatusCode = raw.StatusCode
		if out.Header == nil {
			out.Header = raw.Header
		}
		if raw.Body != nil {
			out.ErrorBody, _ = io.ReadAll(io.LimitReader(raw.Body, backoff.MaxBodyBytes))
		}
	}
	return out, err
}

func (c *Client) responseParams(req Request) responses.ResponseNewParams {
	p := responses.ResponseNewParams{Model: shared.ResponsesModel(req.Model)}
	if req.Messages != nil {
		items := make(responses.ResponseInputParam, 0, len(req.Messages))
		for _, m := range req.Messages {
			items = append(items, responses.ResponseInputItemParamOfMessage(m.Content, responses.EasyInputMessageRole(m.Role)))
		}
		p.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: items}
	} else {
		p.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String(req.Text)}
	}
	if req.Instructions != "" {
		p.Instructions = openai.String(req.Instructions)
	}
	if req.MaxOutputTokens > 0 {
		p.MaxOutputTokens = openai.Int(req.MaxOutputTokens)
	}
	if len(req.Metadata) > 0 {
		p.Metadata = shared.Metadata(req.Metadata)
	}
	return p
}

func (c *Client) responses(ctx context.Context, req Request, opts []option.RequestOption, out *Response) error {
	resp, err := c.oa.Responses.New(ctx, c.responseParams(req), opts...)
	if err != nil {
		return err
	}
	fillFromResponse(out, resp)
	return nil
}

func fillFromResponse(out *Response, resp *responses.Response) {
	out.Text = resp.OutputText()
	out.ResponseID = resp.ID
	out.Model = resp.Model
	if resp.JSON.Usage.Valid() {
		out.Usage = &Usage{resp.Usage.InputTokens, resp.Usage.OutputTokens, resp.Usage.TotalTokens}
	}
}

func (c *Client) responsesStream(ctx context.Context, req Request, opts []option.RequestOption, out *Response, opened func()) error {
	stream := c.oa.Responses.NewStreaming(ctx, c.responseParams(req), opts...)
	defer stream.Close()
	opened()
	var sb strings.Builder
	completed := false
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "response.output_text.delta":
			sb.WriteString(ev.Delta)
		case "response.completed":
			completed = true
			fillFromResponse(out, &ev.Response)
		case "response.incomplete":
			// Cut by max_output_tokens (or a content filter): a final answer
			// with partial text and real usage, as the non-streaming call gives.
			completed = true
			fillFromResponse(out, &ev.Response)
		case "response.failed", "error":
			// A refusal inside the stream (rate limit, quota, server error):
			// keep the event so it is classified like the same HTTP answer.
			out.Text = sb.String()
			out.ErrorEventType, out.ErrorEventData = ev.Type, []byte(ev.RawJSON())
			return fmt.Errorf("%w: %s event", ErrIncompleteStream, ev.Type)
		}
	}
	if err := stream.Err(); err != nil {
		out.Text = sb.String()
		return err
	}
	if !completed {
		out.Text = sb.String()
		return ErrIncompleteStream
	}
	if out.Text == "" {
		out.Text = sb.String()
	}
	return nil
}

func (c *Client) chatParams(req Request) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{Model: shared.ChatModel(req.Model)}
	if req.Instructions != "" {
		p.Messages = append(p.Messages, openai.SystemMessage(req.Instructions))
	}
	if req.Messages == nil {
		p.Messages = append(p.Messages, openai.UserMessage(req.Text))
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			p.Messages = append(p.Messages, openai.SystemMessage(m.Content))
		case "developer":
			p.Messages = append(p.Messages, openai.DeveloperMessage(m.Content))
		case "assistant":
			p.Messages = append(p.Messages, openai.AssistantMessage(m.Content))
		default:
			p.Messages = append(p.Messages, openai.UserMessage(m.Content))
		}
	}
	if req.MaxOutputTokens > 0 {
		p.MaxCompletionTokens = openai.Int(req.MaxOutputTokens)
	}
	if len(req.Metadata) > 0 {
		p.Metadata = shared.Metadata(req.Metadata)
	}
	return p
}

func (c *Client) chat(ctx context.Context, req Request, opts []option.RequestOption, out *Response) error {
	resp, err := c.oa.Chat.Completions.New(ctx, c.chatParams(req), opts...)
	if err != nil {
		return err
	}
	if len(resp.Choices) > 0 {
		out.Text = resp.Choices[0].Message.Content
	}
	out.ResponseID, out.Model = resp.ID, resp.Model
	if resp.JSON.Usage.Valid() {
		out.Usage = &Usage{resp.Usage.PromptTokens, resp.Usage.CompletionTokens, resp.Usage.TotalTokens}
	}
	return nil
}

func (c *Client) chatStream(ctx context.Context, req Request, opts []option.RequestOption, out *Response, opened func()) error {
	p := c.chatParams(req)
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.oa.Chat.Completions.NewStreaming(ctx, p, opts...)
	defer stream.Close()
	opened()
	var sb strings.Builder
	finished := false
	for stream.Next() {
		ch := stream.Current()
		out.ResponseID, out.Model = ch.ID, ch.Model
		for _, choice := range ch.Choices {
			sb.WriteString(choice.Delta.Content)
			if choice.FinishReason != "" {
				finished = true
			}
		}
		if ch.JSON.Usage.Valid() && ch.Usage.TotalTokens > 0 {
			out.Usage = &Usage{ch.Usage.PromptTokens, ch.Usage.CompletionTokens, ch.Usage.TotalTokens}
		}
	}
	out.Text = sb.String()
	if err := stream.Err(); err != nil {
		return err
	}
	if !finished && out.Usage == nil {
		return ErrIncompleteStream
	}
	return nil
}
