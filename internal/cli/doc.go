// Package cli holds the commands of the promptq binary: each command's flags,
// their validation and what it runs, one file per command named after it
// (worker.go, enqueue.go, status.go...). cmd/promptq only calls Run:
//
//	err := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
//	switch {
//	case err == nil, errors.Is(err, config.ErrHelp): // exit 0
//	case errors.Is(err, cli.ErrBadInput): // exit 1, already reported
//	default: // print err, exit 1
//	}
package cli
