package fakeopenai

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// chargeParams is a request whose counts differ under every charge model:
// instructions of 25 characters (7 o200k tokens) and an input of 77
// characters (18 o200k tokens), so 102 characters, 25 tokens, and with
// tokens.PerMessage for each of the two texts 33.
func chargeParams() responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model:           "gpt-4o-mini",
		Instructions:    openai.String("Summarise the text below."),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("The quick brown fox jumps over the lazy dog, then naps under an old oak tree.")},
		MaxOutputTokens: openai.Int(16),
	}
}

func TestChargeModels(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		charged int // TPM charge: input part + max_output_tokens 16
		usage   int // usage.input_tokens
	}{
		// ceil(102/4) + 4 for the one message; usage the same.
		{"simple (default)", Config{}, 26 + 4 + 16, 30},
		// ceil(102/4), OpenAI's documented estimate; usage is the tokenizer's.
		{"chars", Config{Charge: ChargeChars}, 26 + 16, 33},
		{"tokenizer", Config{Charge: ChargeTokenizer}, 33 + 16, 33},
		// Scale applies to the input charge only, rounded up; usage is not scaled.
		{"tokenizer x1.2", Config{Charge: ChargeTokenizer, ChargeScale: 1.2}, 40 + 16, 33},
		{"tokenizer x0.8", Config{Charge: ChargeTokenizer, ChargeScale: 0.8}, 27 + 16, 33},
		{"chars x1.2", Config{Charge: ChargeChars, ChargeScale: 1.2}, 32 + 16, 33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.TPM = 1_000_000
			f := setup(t, tt.cfg)
			resp, err := f.client.Responses.New(context.Background(), chargeParams())
			if err != nil {
				t.Fatal(err)
			}
			if got := int(resp.Usage.InputTokens); got != tt.usage {
				t.Errorf("usage.input_tokens = %d, want %d", got, tt.usage)
			}
			st := f.fake.Stats()
			if st.TokensCharged != tt.charged || st.InputTokens != tt.usage || st.Admitted != 1 {
				t.Errorf("charged %d (usage %d, admitted %d), want %d (%d, 1)", st.TokensCharged, st.InputTokens, st.Admitted, tt.charged, tt.usage)
			}
			p := chargeParams()
			got := NewCharger(tt.cfg).Of("gpt-4o-mini", p.Instructions.Value, []string{p.Input.OfString.Value})
			if got.Input+16 != tt.charged || got.Usage != tt.usage {
				t.Errorf("Charger.Of = %+v, want input %d usage %d", got, tt.charged-16, tt.usage)
			}
		})
	}
}

// CJK text costs far more tokens than characters/4: the chars and tokenizer
// models disagree in the other direction from English prose.
func TestChargeCJK(t *testing.T) {
	msgs := []string{"東京の天気は晴れです。明日は雨が降るでしょう。"} // 23 characters, 17 tokens
	chars := NewCharger(Config{Charge: ChargeChars}).Of("gpt-4o-mini", "", msgs)
	tok := NewCharger(Config{Charge: ChargeTokenizer}).Of("gpt-4o-mini", "", msgs)
	if chars.Input != 6 || tok.Input != 21 || chars.Usage != 21 || tok.Usage != 21 {
		t.Fatalf("chars %+v tokenizer %+v; want input 6 and 21, usage 21", chars, tok)
	}
}

func TestChargeNoise(t *testing.T) {
	charges := func(seed uint64) []int {
		f := setup(t, Config{Charge: ChargeTokenizer, ChargeNoise: 0.1, Seed: seed, TPM: 1_000_000})
		var out []int
		prev := 0
		for range 40 {
			if _, err := f.client.Responses.New(context.Background(), chargeParams()); err != nil {
				t.Fatal(err)
			}
			st := f.fake.Stats()
			out = append(out, st.TokensCharged-prev-16)
			prev = st.TokensCharged
			if st.InputTokens != 33*len(out) {
				t.Fatalf("usage moved with the noise: %d after %d requests", st.InputTokens, len(out))
			}
		}
		return out
	}
	a, b, c := charges(7), charges(7), charges(8)
	lo, hi := math.Ceil(33*0.9-1e-9), math.Ceil(33*1.1-1e-9)
	distinct := map[int]bool{}
	for i, n := range a {
		if float64(n) < lo || float64(n) > hi {
			t.Errorf("request %d charged %d input tokens, want %v-%v (33 ±10%%)", i, n, lo, hi)
		}
		distinct[n] = true
	}
	if len(distinct) < 3 {
		t.Errorf("40 noisy charges took only %d values: %v", len(distinct), a)
	}
	if strings.Join(itoa(a), ",") != strings.Join(itoa(b), ",") {
		t.Errorf("same seed, different charges:\n%v\n%v", a, b)
	}
	if strings.Join(itoa(a), ",") == strings.Join(itoa(c), ",") {
		t.Errorf("seeds 7 and 8 drew the same charges %v", a)
	}
}

func itoa(xs []int) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.Itoa(x)
	}
	return out
}

// With RetryAfterSeconds a 429 carries only the rounded-up retry-after; the
// precise wait is in the body alone.
func TestRetryAfterSecondsOnly(t *testing.T) {
	for _, tt := range []struct {
		ra     RetryAfter
		wantMS string
	}{{RetryAfterSeconds, ""}, {RetryAfterBoth, "50"}, {"", "50"}} {
		t.Run(string(cmpRA(tt.ra)), func(t *testing.T) {
			f := setup(t, Config{RPM: 1200, Burst: time.Second, RetryAfter: tt.ra}) // 20 requests, one per 50ms
			ctx := context.Background()
			for i := range 20 {
				if _, err := f.client.Responses.New(ctx, respParams("x")); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
			}
			var raw *http.Response
			_, err := f.client.Responses.New(ctx, respParams("x"), option.WithResponseInto(&raw))
			e := apiErr(t, err, 429, "rate_limit_exceeded")
			if !strings.Contains(e.Message, "Please try again in 50ms.") {
				t.Errorf("message %q lacks the precise wait", e.Message)
			}
			wantHeader(t, raw.Header, "retry-after", "1")
			wantHeader(t, raw.Header, "retry-after-ms", tt.wantMS)
			if _, ok := raw.Header["Retry-After-Ms"]; ok != (tt.wantMS != "") {
				t.Errorf("retry-after-ms present %v, want %v", ok, tt.wantMS != "")
			}
		})
	}
}

func cmpRA(r RetryAfter) RetryAfter {
	if r == "" {
		return "default"
	}
	return r
}

func TestSetLimitsHalving(t *testing.T) {
	// 600 TPM, burst 1s: capacity 10 tokens; chat "abcd" + system "be brief" costs 11 + max_tokens.
	f := setup(t, Config{RPM: 120, TPM: 6000, Burst: time.Second}) // capacity 2 requests, 100 tokens
	ctx := context.Background()
	p := chatParams("abcd")
	p.MaxTokens = openai.Int(29) // cost 40
	var raw *http.Response
	if _, err := f.client.Chat.Completions.New(ctx, p, option.WithResponseInto(&raw)); err != nil {
		t.Fatal(err)
	}
	wantHeader(t, raw.Header, "x-ratelimit-remaining-tokens", "60")
	if err := f.fake.SetLimits(Limits{RPM: 60, TPM: 3000}); err != nil { // capacity 1 request, 50 tokens
		t.Fatal(err)
	}
	s := f.fake.Sample()
	if s.RPM != 60 || s.TPM != 3000 || s.TokenLevel != 50 || s.RequestLevel != 1 || s.Admitted != 1 || s.TokensCharged != 40 {
		t.Fatalf("after halving: %+v; want levels cut to the new capacities 1 and 50", s)
	}
	if _, err := f.client.Chat.Completions.New(ctx, p, option.WithResponseInto(&raw)); err != nil {
		t.Fatal(err)
	}
	wantHeader(t, raw.Header, "x-ratelimit-limit-tokens", "3000")
	wantHeader(t, raw.Header, "x-ratelimit-remaining-tokens", "10")
	wantHeader(t, raw.Header, "x-ratelimit-limit-requests", "60")
	// The new limit refills at its own rate: 50 tokens/s, one request/s.
	_, err := f.client.Chat.Completions.New(ctx, p)
	apiErr(t, err, 429, "rate_limit_exceeded")
	f.clk.Advance(time.Second)
	if _, err := f.client.Chat.Completions.New(ctx, p); err != nil {
		t.Fatalf("after 1s at the new rate: %v", err)
	}
	if err := f.fake.SetLimits(Limits{RPM: -1}); err == nil {
		t.Error("negative limit accepted")
	}

	// Over HTTP: a field left out is unchanged; 0 lifts a limit.
	resp, err := http.Post(f.srv.URL+"/_fake/limits", "application/json", strings.NewReader(`{"tpm":0}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Limits
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got != (Limits{RPM: 60}) {
		t.Fatalf("POST /_fake/limits: %d %+v %v", resp.StatusCode, got, err)
	}
	if l := f.fake.Limits(); l != (Limits{RPM: 60}) {
		t.Fatalf("limits %+v", l)
	}
}

func TestCallsAfterAnswered(t *testing.T) {
	f := setup(t, Config{})
	ctx := context.Background()
	for _, id := range []string{"t1", "t2", "t1", "t1"} {
		if _, err := f.client.Responses.New(ctx, respParams("x"), option.WithHeader(TaskIDHeader, id)); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.fake.Stats(); st.CallsAfterAnswered != 2 || st.ByTask["t1"] != 3 {
		t.Fatalf("calls after answered %d (t1 sent %d times), want 2", st.CallsAfterAnswered, st.ByTask["t1"])
	}
}

func TestChargeConfigValidate(t *testing.T) {
	for _, c := range []Config{{Charge: "words"}, {ChargeScale: 0.05}, {ChargeScale: 11}, {ChargeNoise: -0.1}, {ChargeNoise: 0.6}, {RetryAfter: "never"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if err := (Config{Charge: ChargeTokenizer, ChargeScale: 1.2, ChargeNoise: 0.1, RetryAfter: RetryAfterSeconds}).Validate(); err != nil {
		t.Error(err)
	}
}
