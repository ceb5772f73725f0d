// Package fakeopenai is an OpenAI-compatible fake provider for the demo,
// `promptq fake-openai` and tests. It follows OpenAI's documented behaviour
// closely (bodies, SSE event sequences, error shapes, x-ratelimit-* headers)
// so that code which works against it works against the real API.
//
// It serves, with or without the /v1 prefix:
//
//	POST /v1/responses          Responses API, JSON or SSE ("stream": true)
//	POST /v1/chat/completions   Chat Completions, JSON or SSE (stream_options.include_usage)
//	POST /_fake/mode            {"mode":"insufficient_quota","for":"5s"} ("for" optional); GET shows the mode
//	POST /_fake/limits          {"rpm":N,"tpm":N} changes the limits at run time (e.g. halving); GET shows them
//	GET  /_fake/stats           Stats as JSON
//	POST /_fake/reset           clears Stats
//	GET  /healthz
//
// Rate limiting works like OpenAI's: a request bucket (RPM) and a token
// bucket (TPM), each holding limit*Burst/1min and refilling continuously at
// limit/60 per second. Admission costs 1 request and input tokens + max output
// tokens (DefaultMaxOutputTokens when the request gives none); unused output
// is not refunded, a rejected request is not charged. Config.Charge picks
// how input is charged: ChargeSimple (default: ceil(characters/4) over the
// instructions and all message texts plus 4 per message, reported as usage
// too), ChargeChars (ceil(characters/4), OpenAI's documented estimate) or
// ChargeTokenizer (the exact tiktoken count plus 4 per text); ChargeScale
// and ChargeNoise (seeded) make a provider charge more, less or noisily.
// Outside ChargeSimple, usage.input_tokens is always the tokenizer count,
// whatever the limiter charged. Config.RetryAfter = RetryAfterSeconds drops
// retry-after-ms from 429s, leaving the precise wait in the body only.
// Sample returns the limiter's accounting (counters and bucket levels) at
// one instant, for measuring utilisation. The answer text is OutputText(last user message, n) with
// n = min(Config.OutputTokens, the request's max tokens).
//
// The order of checks for one request is: reset mode (connection closed),
// auth (401 invalid_api_key, always in ModeUnauthorized), body and model
// validation (400; 404 model_not_found for a model outside Config.Models
// and for every model in ModeModelNotFound), quota mode (429
// insufficient_quota), rate limits (429 rate_limit_exceeded), server-error
// mode (charged, like a real failure after admission), latency (context-aware),
// answer (cut short in truncate mode).
//
// In a test:
//
//	fake := fakeopenai.New(fakeopenai.Config{RPM: 60, TPM: 100_000, APIKey: "sk-test"})
//	srv := httptest.NewServer(fake)
//	defer srv.Close()
//	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("sk-test"))
//	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
//		Model: "gpt-4o-mini",
//		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello")},
//	})
//	// resp.OutputText() == fakeopenai.OutputText("hello", 16)
//	fake.SetMode(fakeopenai.ModeInsufficientQuota, 5*time.Second)
//	st := fake.Stats() // st.QuotaErrors, st.ByTask["task-1"], ...
//
// Out of process, drive it over HTTP:
//
//	curl -XPOST localhost:8089/_fake/mode -d '{"mode":"server_error","for":"10s"}'
//	curl localhost:8089/_fake/stats
//
// # Accounts
//
// NewAccounts runs several accounts in one process, as a pool of keys or
// deployments sees them: each account is an independent Server (its own
// buckets, mode and Stats) built from a base Config and an AccountSpec
// (limits, latency, charge, starting mode, models, key). ParseAccountSpec
// reads the flag form "name[:key=value,...]", for example
// "east:rpm=300,tpm=24000" or "overflow:rpm=60,tpm=20000,latency=2s,models=gpt-4o-mini|gpt-4.1".
// Accounts serves:
//
//	/<name>/v1/...                   that account's API (base URL http://host:port/<name>/v1)
//	/<name>/_fake/...                that account's admin endpoints
//	/_fake/mode?account=<name>       one account's mode, limits, stats or reset (also /_fake/limits, /_fake/stats, /_fake/reset)
//	/_fake/mode, /_fake/reset        without ?account=: every account; answers keyed by name
//	/_fake/stats, GET /_fake/limits  without ?account=: an object keyed by account name
//	/healthz
//
// An unknown account is a 404 with OpenAI's invalid_request_error body.
// In a test:
//
//	accts, err := fakeopenai.NewAccounts(fakeopenai.Config{APIKey: "sk-test"}, []fakeopenai.AccountSpec{
//		{Name: "east", RPM: 300, TPM: 24_000},
//		{Name: "overflow", RPM: 60, TPM: 20_000, Latency: 2 * time.Second},
//	})
//	srv := httptest.NewServer(accts)
//	east := openai.NewClient(option.WithBaseURL(srv.URL+"/east/v1"), option.WithAPIKey("sk-test"))
//	accts.Account("east").SetMode(fakeopenai.ModeInsufficientQuota, 0)
//	st := accts.Account("east").Stats() // st.RequestsAfterFirstQuotaError, ...
//
//	curl -XPOST 'localhost:8089/_fake/mode?account=east' -d '{"mode":"unauthorized"}'
package fakeopenai
