// Command promptq is a Redis-coordinated job queue for LLM prompt tasks.
// This package only parses flags and wires components together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/config"
)

// quietRedis drops go-redis's own log lines (dial retries and the like):
// promptq reports Redis problems itself, once, as one clear line.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietRedis{})
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // ms: rate limits live at that scale
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
	case errors.Is(err, errBadInput):
		os.Exit(1) // details already printed, one line each
	default:
		fmt.Fprintln(os.Stderr, "promptq: "+err.Error())
		os.Exit(1)
	}
}

// errBadInput means some input was rejected and reported already.
var errBadInput = errors.New("some input was invalid")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"worker", "Run one worker replica: take prompt tasks from asynq and call the provider within the shared limits.", runWorker},
		{"enqueue", "Enqueue prompt tasks from a JSONL file (one task a line).", runEnqueue},
		{"status", "Show queue counts, pause state and quota headroom.", runStatus},
		{"results", "Export finished tasks (completed and archived) as JSONL.", runResults},
		{"pause", "Pause an account (or all): no worker starts a new request until resume or --for/--until.", runPause},
		{"tenant", "Set, list or delete per-tenant budgets (rpm, tpm, requests/day) inside an account.", runTenant},
		{"resume", "Resume a paused account (default: every paused account).", runResume},
		{"fake-openai", "Run an OpenAI-compatible fake provider with rate limits, for development and tests.", runFake},
		{"demo", "Run everything in one process on an embedded Redis and a fake provider.", runDemo},
		{"serve", "Serve asynqmon, Prometheus metrics, health checks and a JSON API for producers and operators over HTTP.", runServe},
		{"probe", "GET a health endpoint (a worker's --ops-addr /healthz) and exit 0 on 2xx: a healthcheck for the distroless image.", runProbe},
		{"bench", "Measure promptq against the naive baseline on the same load (throwaway Redis, fake provider, K workers).", runBench},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "promptq — a Redis-coordinated job queue that pushes LLM prompt tasks through a provider's rate limits from many workers.")
	fmt.Fprintln(w, "\nUsage: promptq <command> [flags]   (promptq <command> --help lists every flag with its env variable)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}
