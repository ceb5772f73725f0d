// Command promptq is a Redis-coordinated job queue for LLM prompt tasks.
// The commands live in internal/cli; main only sets process-wide state,
// hands over the arguments and turns the error into an exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/promptq/promptq/internal/cli"
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
	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, config.ErrHelp):
	case errors.Is(err, cli.ErrBadInput):
		os.Exit(1) // details already printed, one line each
	default:
		fmt.Fprintln(os.Stderr, "promptq: "+err.Error())
		os.Exit(1)
	}
}
