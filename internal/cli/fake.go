package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/internal/fakeopenai"
)

type fakeFlags struct {
	addr         string
	rpm, tpm     int
	burst        time.Duration
	latency      time.Duration
	jitter       time.Duration
	outputTokens int
	apiKey       string
	mode         string
	errorStatus  int
	charge       string
	chargeScale  float64
	chargeNoise  float64
	seed         int64
	retryAfter   string
	accounts     string
}

func (ff *fakeFlags) register(f *config.Flags, withAddr bool) {
	if withAddr {
		f.String(&ff.addr, "addr", "FAKE_OPENAI_ADDR", "127.0.0.1:8089", "listen address (loopback)")
	}
	f.Int(&ff.rpm, "rpm", "FAKE_OPENAI_RPM", 600, "requests per minute (0 = unlimited)")
	f.Int(&ff.tpm, "tpm", "FAKE_OPENAI_TPM", 0, "tokens per minute (0 = unlimited)")
	f.Duration(&ff.burst, "burst", "FAKE_OPENAI_BURST", time.Minute, "bucket capacity as refill time: 60s like OpenAI, 1s for per-second limits")
	f.Duration(&ff.latency, "latency", "FAKE_OPENAI_LATENCY", 100*time.Millisecond, "latency of each answer")
	f.Duration(&ff.jitter, "jitter", "FAKE_OPENAI_JITTER", 50*time.Millisecond, "uniform ± jitter on the latency")
	f.Int(&ff.outputTokens, "output-tokens", "FAKE_OPENAI_OUTPUT_TOKENS", fakeopenai.OutputTokensDefault, "tokens generated per answer (capped by max_output_tokens)")
	f.String(&ff.apiKey, "api-key", "FAKE_OPENAI_API_KEY", "", "when set, the only bearer key accepted (else any non-empty key)")
	f.String(&ff.mode, "mode", "FAKE_OPENAI_MODE", "normal", "start mode: normal, insufficient_quota, server_error, reset, slow, truncate, slow_down (change at run time with POST /_fake/mode)")
	f.Int(&ff.errorStatus, "error-status", "FAKE_OPENAI_ERROR_STATUS", 500, "status sent in server_error mode (500-599)")
	f.String(&ff.charge, "charge", "FAKE_OPENAI_CHARGE", string(fakeopenai.ChargeDefault), "how TPM charges input at admission: simple (ceil(chars/4) + 4/message, also the usage), chars (ceil(chars/4), OpenAI's documented estimate) or tokenizer (exact tiktoken count + 4/message); max tokens are added")
	f.Float(&ff.chargeScale, "charge-scale", "FAKE_OPENAI_CHARGE_SCALE", fakeopenai.ChargeScaleDefault, "factor on the input charge, e.g. 1.2 to charge 20% more than the model counts (0.1-10)")
	f.Float(&ff.chargeNoise, "charge-noise", "FAKE_OPENAI_CHARGE_NOISE", 0, "uniform ± noise on each request's input charge, e.g. 0.1 for ±10% (0-0.5)")
	f.Int64(&ff.seed, "seed", "FAKE_OPENAI_SEED", 0, "seed of the charge noise (>= 0)")
	if withAddr {
		f.String(&ff.accounts, "accounts", "PROMPTQ_FAKE_ACCOUNTS", "", "serve several accounts, each under /<name>/v1 with its own buckets, faults and stats, ';'-separated: name[:rpm=N,tpm=N,latency=D,charge=C,mode=M,models=a|b,key_env=VAR] (unset keys take the flags above); admin endpoints take ?account=<name>")
	}
	f.String(&ff.retryAfter, "retry-after", "FAKE_OPENAI_RETRY_AFTER", string(fakeopenai.RetryAfterDefault), "429 wait headers: both (retry-after seconds + retry-after-ms) or seconds (retry-after rounded up; the precise wait only in the body)")
}

func (ff *fakeFlags) config() fakeopenai.Config {
	return fakeopenai.Config{RPM: ff.rpm, TPM: ff.tpm, Burst: ff.burst, Latency: ff.latency, Jitter: ff.jitter,
		OutputTokens: ff.outputTokens, APIKey: ff.apiKey, ServerErrorStatus: ff.errorStatus,
		Charge: fakeopenai.Charge(ff.charge), ChargeScale: ff.chargeScale, ChargeNoise: ff.chargeNoise,
		RetryAfter: fakeopenai.RetryAfter(ff.retryAfter)}
}

func (ff *fakeFlags) server() (*fakeopenai.Server, error) {
	cfg := ff.config()
	if ff.seed < 0 {
		return nil, fmt.Errorf("--seed / FAKE_OPENAI_SEED must be >= 0, got %d", ff.seed)
	}
	cfg.Seed = uint64(ff.seed)
	if err := cfg.WithDefaults().Validate(); err != nil {
		return nil, err
	}
	m := fakeopenai.Mode(ff.mode)
	if !m.Valid() {
		return nil, fmt.Errorf("--mode / FAKE_OPENAI_MODE %q: must be normal, insufficient_quota, server_error, reset, slow, truncate or slow_down", ff.mode)
	}
	s := fakeopenai.New(cfg)
	s.SetMode(m, 0)
	return s, nil
}

// multi is the multi-account fake of --accounts.
func (ff *fakeFlags) multi() (*fakeopenai.Accounts, error) {
	var specs []fakeopenai.AccountSpec
	for _, part := range strings.Split(ff.accounts, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		spec, err := fakeopenai.ParseAccountSpec(part)
		if err != nil {
			return nil, fmt.Errorf("--accounts / PROMPTQ_FAKE_ACCOUNTS: %v", err)
		}
		specs = append(specs, spec)
	}
	a, err := fakeopenai.NewAccounts(ff.config(), specs)
	if err != nil {
		return nil, fmt.Errorf("--accounts / PROMPTQ_FAKE_ACCOUNTS: %v", err)
	}
	return a, nil
}

func runFake(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var ff fakeFlags
	f := config.New("fake-openai", "Run an OpenAI-compatible fake provider: POST /v1/responses (JSON and SSE), POST /v1/chat/completions,\n"+
		"continuously refilling request and token buckets with x-ratelimit-* headers, 429s with retry-after,\n"+
		"and switchable faults. Admin: POST /_fake/mode {\"mode\":\"insufficient_quota\",\"for\":\"5s\"}, GET /_fake/stats, POST /_fake/reset,\n"+
		"POST /_fake/limits {\"rpm\":N,\"tpm\":N} (change the limits at run time, e.g. halve them).", stdout)
	ff.register(f, true)
	if err := f.Parse(args); err != nil {
		return err
	}
	s, err := ff.server()
	if err != nil {
		return err
	}
	var h http.Handler = s
	var accts *fakeopenai.Accounts
	if ff.accounts != "" {
		if accts, err = ff.multi(); err != nil {
			return err
		}
		h = accts
	}
	ln, err := net.Listen("tcp", ff.addr)
	if err != nil {
		return fmt.Errorf("fake-openai: listen %s: %v", ff.addr, err)
	}
	if accts == nil {
		fmt.Fprintf(stdout, "fake-openai listening on http://%s/v1 (rpm %d, tpm %d)\n", ln.Addr(), ff.rpm, ff.tpm)
	} else {
		for _, n := range accts.Names() {
			l := accts.Account(n).Limits()
			fmt.Fprintf(stdout, "fake-openai account %s on http://%s/%s/v1 (rpm %d, tpm %d)\n", n, ln.Addr(), n, l.RPM, l.TPM)
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
