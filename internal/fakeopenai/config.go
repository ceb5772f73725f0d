package fakeopenai

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults.
const (
	// BurstDefault is the bucket capacity expressed as refill time: a full minute, as OpenAI does.
	BurstDefault = time.Minute
	// OutputTokensDefault is how many tokens the fake "generates" per response.
	OutputTokensDefault = 16
	// ServerErrorStatusDefault is the status sent in ModeServerError.
	ServerErrorStatusDefault = 500
	// SlowByDefault is the extra latency of ModeSlow.
	SlowByDefault = 30 * time.Second
	// DefaultMaxOutputTokens is the output allowance charged against TPM when a
	// request does not set max_output_tokens / max_tokens / max_completion_tokens.
	DefaultMaxOutputTokens = 4096
	// MinResponsesMaxOutputTokens is the smallest max_output_tokens the Responses API accepts.
	MinResponsesMaxOutputTokens = 16
	// ChargeDefault is the default charge model.
	ChargeDefault = ChargeSimple
	// ChargeScaleDefault is the default factor on the input charge.
	ChargeScaleDefault = 1.0
	// RetryAfterDefault is the default way 429s carry their wait.
	RetryAfterDefault = RetryAfterBoth
	// MaxChargeNoise is the largest Config.ChargeNoise.
	MaxChargeNoise = 0.5
)

// RetryAfter is how a rate-limit 429 tells the client when to retry
// (Config.RetryAfter). The body's message always says "Please try again in
// <wait>" with the precise wait.
type RetryAfter string

// Ways of telling the wait.
const (
	// RetryAfterBoth sends retry-after (whole seconds, rounded up) and
	// retry-after-ms (the precise wait). The default.
	RetryAfterBoth RetryAfter = "both"
	// RetryAfterSeconds sends only retry-after in whole seconds, rounded
	// up: the precise wait is only in the body, as OpenAI often does.
	RetryAfterSeconds RetryAfter = "seconds"
)

// Config configures a fake server. The zero value is usable: unlimited rate,
// no latency, 16 output tokens, any non-empty bearer key accepted.
type Config struct {
	// RPM is the requests-per-minute limit; 0 (default) means unlimited and no
	// x-ratelimit-*-requests headers are sent.
	RPM int
	// TPM is the tokens-per-minute limit; 0 (default) means unlimited and no
	// x-ratelimit-*-tokens headers are sent.
	TPM int
	// Burst is the bucket capacity expressed as refill time:
	// capacity = limit*Burst/1min. Default BurstDefault (60s, OpenAI-like).
	// 1s models per-second quantised limits. The request bucket always holds
	// at least one request.
	Burst time.Duration
	// Latency is added to every admitted request (default 0).
	Latency time.Duration
	// Jitter varies Latency by a uniform ±Jitter (default 0).
	Jitter time.Duration
	// OutputTokens is the number of tokens generated per response, capped by
	// the request's max output tokens. Default OutputTokensDefault (16).
	OutputTokens int
	// APIKey, when set, must be sent as "Authorization: Bearer <APIKey>" or the
	// request gets 401 invalid_api_key. When empty any non-empty bearer passes;
	// a missing one is always 401.
	APIKey string
	// ServerErrorStatus is the status used in ModeServerError, 500-599.
	// Default ServerErrorStatusDefault (500).
	ServerErrorStatus int
	// SlowBy is the latency ModeSlow adds. Default SlowByDefault (30s).
	SlowBy time.Duration
	// Charge is the model the TPM bucket charges input with at admission
	// (see Charge). Default ChargeDefault (ChargeSimple).
	Charge Charge
	// ChargeScale multiplies the input charge (not the max output tokens),
	// e.g. 1.2 for a provider that charges 20% more than its model's count.
	// 0.1-10; default ChargeScaleDefault (1). usage.input_tokens is not scaled.
	ChargeScale float64
	// ChargeNoise multiplies each request's (scaled) input charge by a
	// uniform factor in [1-ChargeNoise, 1+ChargeNoise], drawn from a
	// generator seeded with Seed. 0-MaxChargeNoise; default 0 (no noise).
	ChargeNoise float64
	// Seed seeds the charge noise (default 0, itself a fixed seed).
	Seed uint64
	// RetryAfter is how rate-limit 429s carry their wait. Default
	// RetryAfterDefault (RetryAfterBoth).
	RetryAfter RetryAfter
	// Models, when not empty, are the models the server serves: a request
	// for another model gets 404 model_not_found. Default empty: every model
	// but "bad-model".
	Models []string
	// Clock tells the time for the rate-limit buckets, mode expiry and stats
	// timestamps. Default time.Now. Latency always uses real timers.
	Clock func() time.Time
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Burst = cmp.Or(c.Burst, BurstDefault)
	c.OutputTokens = cmp.Or(c.OutputTokens, OutputTokensDefault)
	c.ServerErrorStatus = cmp.Or(c.ServerErrorStatus, ServerErrorStatusDefault)
	c.SlowBy = cmp.Or(c.SlowBy, SlowByDefault)
	c.Charge = cmp.Or(c.Charge, ChargeDefault)
	c.ChargeScale = cmp.Or(c.ChargeScale, ChargeScaleDefault)
	c.RetryAfter = cmp.Or(c.RetryAfter, RetryAfterDefault)
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.RPM < 0:
		return fmt.Errorf("fakeopenai: RPM must be >= 0 (0 = unlimited), got %d", c.RPM)
	case c.TPM < 0:
		return fmt.Errorf("fakeopenai: TPM must be >= 0 (0 = unlimited), got %d", c.TPM)
	case c.Burst < 0:
		return fmt.Errorf("fakeopenai: Burst must be >= 0 (0 = default %s), got %s", BurstDefault, c.Burst)
	case c.Latency < 0:
		return fmt.Errorf("fakeopenai: Latency must be >= 0, got %s", c.Latency)
	case c.Jitter < 0:
		return fmt.Errorf("fakeopenai: Jitter must be >= 0, got %s", c.Jitter)
	case c.OutputTokens < 0:
		return fmt.Errorf("fakeopenai: OutputTokens must be >= 0 (0 = default %d), got %d", OutputTokensDefault, c.OutputTokens)
	case c.ServerErrorStatus != 0 && (c.ServerErrorStatus < 500 || c.ServerErrorStatus > 599):
		return fmt.Errorf("fakeopenai: ServerErrorStatus must be 500-599 (0 = default %d), got %d", ServerErrorStatusDefault, c.ServerErrorStatus)
	case c.SlowBy < 0:
		return fmt.Errorf("fakeopenai: SlowBy must be >= 0 (0 = default %s), got %s", SlowByDefault, c.SlowBy)
	case c.Charge != "" && !c.Charge.Valid():
		return fmt.Errorf("fakeopenai: Charge must be simple, chars or tokenizer (empty = default %s), got %q", ChargeDefault, c.Charge)
	case c.ChargeScale != 0 && (c.ChargeScale < 0.1 || c.ChargeScale > 10):
		return fmt.Errorf("fakeopenai: ChargeScale must be 0.1-10 (0 = default %v), got %v", ChargeScaleDefault, c.ChargeScale)
	case c.ChargeNoise < 0 || c.ChargeNoise > MaxChargeNoise:
		return fmt.Errorf("fakeopenai: ChargeNoise must be 0-%v, got %v", MaxChargeNoise, c.ChargeNoise)
	case slices.Contains(c.Models, ""):
		return fmt.Errorf("fakeopenai: Models must not contain an empty name, got %q", c.Models)
	case c.RetryAfter != "" && c.RetryAfter != RetryAfterBoth && c.RetryAfter != RetryAfterSeconds:
		return fmt.Errorf("fakeopenai: RetryAfter must be both or seconds (empty = default %s), got %q", RetryAfterDefault, c.RetryAfter)
	}
	return nil
}

// Mode is a failure behaviour the fake can be switched into with SetMode or
// POST /_fake/mode.
type Mode string

// Modes.
const (
	// ModeNormal serves requests normally.
	ModeNormal Mode = "normal"
	// ModeInsufficientQuota answers every API request with 429 insufficient_quota.
	ModeInsufficientQuota Mode = "insufficient_quota"
	// ModeServerError answers admitted requests with Config.ServerErrorStatus.
	ModeServerError Mode = "server_error"
	// ModeReset closes the TCP connection without answering.
	ModeReset Mode = "reset"
	// ModeSlow adds Config.SlowBy of latency (the client may give up first).
	ModeSlow Mode = "slow"
	// ModeTruncate cuts responses: streams stop mid-way without the final
	// event, non-stream bodies are cut short.
	ModeTruncate Mode = "truncate"
	// ModeSlowDown answers admitted requests with OpenAI's 503 slow_down
	// ("reduce your request rate to its original level ... then gradually
	// increase it").
	ModeSlowDown Mode = "slow_down"
	// ModeUnauthorized answers every API request with 401 invalid_api_key,
	// as OpenAI does for a revoked or wrong key (the key is masked in the
	// message).
	ModeUnauthorized Mode = "unauthorized"
	// ModeModelNotFound answers every API request with 404 model_not_found,
	// whatever the model, as for a key that lost access to it.
	ModeModelNotFound Mode = "model_not_found"
)

// modes are the known modes.
var modes = []Mode{ModeNormal, ModeInsufficientQuota, ModeUnauthorized, ModeModelNotFound,
	ModeServerError, ModeSlowDown, ModeSlow, ModeReset, ModeTruncate}

// Valid reports whether m is one of the known modes.
func (m Mode) Valid() bool { return slices.Contains(modes, m) }

// modeNames lists the known modes for messages.
func modeNames() string {
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}
