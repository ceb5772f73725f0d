package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/config"
	"github.com/promptq/promptq/pausegate"
)

func runPause(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		c      common
		forD   time.Duration
		until  string
		reason string
	)
	f := config.New("pause", "Pause an account: asynq stops handing its tasks to any worker and no worker sends a new request.\n"+
		"Requests in flight finish. Without --for or --until the pause lasts until 'promptq resume'.\n"+
		"Without --account every account that has run a worker is paused.", stdout)
	c.register(f, true)
	f.Duration(&forD, "for", "PAUSE_FOR", 0, "pause for this long (e.g. 30m)")
	f.String(&until, "until", "PAUSE_UNTIL", "", "pause until this RFC 3339 time")
	f.String(&reason, "reason", "PAUSE_REASON", "manual pause", "reason shown in status")
	if err := f.Parse(args); err != nil {
		return err
	}
	var end time.Time
	switch {
	case forD != 0 && until != "":
		return errors.New("pause: give --for or --until, not both")
	case forD < 0:
		return fmt.Errorf("pause: --for must be positive, got %v", forD)
	case forD > 0:
		end = time.Now().Add(forD)
	case until != "":
		t, err := time.Parse(time.RFC3339, until)
		if err != nil {
			return fmt.Errorf("pause: --until %q is not an RFC 3339 time (e.g. 2026-11-27T15:04:05Z)", until)
		}
		if !t.After(time.Now()) {
			return fmt.Errorf("pause: --until %s is in the past", until)
		}
		end = t
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	accts, err := accountsFor(ctx, rdb, c.account)
	if err != nil {
		return err
	}
	if len(accts) == 0 {
		return errors.New("pause: no account known yet (no worker has run); pass --account")
	}
	gate, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "admin", ShortPause: time.Nanosecond})
	if err != nil {
		return err
	}
	for _, a := range accts {
		rec, err := gate.Pause(ctx, a, pausegate.PauseRequest{Until: end, Reason: reason, Kind: pausegate.KindManual})
		if err != nil {
			return fmt.Errorf("pause %s: %w", a, err)
		}
		if rec.Until.IsZero() {
			fmt.Fprintf(stdout, "paused %s until resumed\n", a)
		} else {
			fmt.Fprintf(stdout, "paused %s until %s\n", a, rec.Until.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func runResume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var c common
	f := config.New("resume", "Resume paused accounts: clears the pause record and unpauses their queues.\n"+
		"Without --account every paused account is resumed, and each is named.", stdout)
	c.register(f, true)
	if err := f.Parse(args); err != nil {
		return err
	}
	rdb, insp, done, err := c.inspect(ctx)
	if err != nil {
		return err
	}
	defer done()
	gate, err := pausegate.New(rdb, pausegate.Config{Queues: pausegate.AsynqQueues(insp), SetBy: "admin"})
	if err != nil {
		return err
	}
	var resumed []string
	if c.account != "" {
		ok, err := gate.Resume(ctx, c.account)
		if err != nil {
			return err
		}
		if ok {
			resumed = []string{c.account}
		}
	} else if resumed, err = gate.ResumeAll(ctx); err != nil {
		return err
	}
	// Queues paused by hand in asynqmon or by an older run are resumed too.
	names, _ := insp.Queues()
	for _, q := range names {
		if info, err := insp.GetQueueInfo(q); err == nil && info.Paused && c.account == "" {
			if err := insp.UnpauseQueue(q); err == nil {
				resumed = append(resumed, "queue "+q)
			}
		}
	}
	if len(resumed) == 0 {
		fmt.Fprintln(stdout, "nothing was paused")
		return nil
	}
	fmt.Fprintf(stdout, "resumed: %s\n", strings.Join(resumed, ", "))
	return nil
}
