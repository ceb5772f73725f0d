package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrBadInput means some input was rejected and each problem was already
// reported on stderr, one line each: the caller exits 1 without another
// message.
var ErrBadInput = errors.New("some input was invalid")

// command is one subcommand: its name, its one-line summary for the command
// list, and the function that parses its flags and runs it.
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

// Run runs the command named by args[0] with the rest of args as its flags.
// It returns config.ErrHelp after printing help that was asked for, and
// ErrBadInput when every problem was already reported on stderr.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
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
