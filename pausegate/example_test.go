package pausegate_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/pausegate"
)

func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	ctx := context.Background()
	clk := clock.NewFake(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	// Two workers' gates, record-only (no asynq queues) for brevity.
	a, _ := pausegate.New(rdb, pausegate.Config{Clock: clk, SetBy: "worker-a"})
	b, _ := pausegate.New(rdb, pausegate.Config{Clock: clk, SetBy: "worker-b"})

	// Worker A hits the quota; worker B sees the pause.
	a.Pause(ctx, "acme", pausegate.PauseRequest{Until: clk.Now().Add(10 * time.Minute), Kind: pausegate.KindQuota, Reason: "quota exceeded"})
	rec, paused, _ := b.Check(ctx, "acme")
	fmt.Println(paused, rec.Kind, rec.SetBy, rec.Remaining(clk.Now()))

	// A shorter pause does not shorten it.
	rec, _ = b.Pause(ctx, "acme", pausegate.PauseRequest{Until: clk.Now().Add(time.Minute), Kind: pausegate.KindRateLimit})
	fmt.Println(rec.Kind, rec.Remaining(clk.Now()))

	// Once the time has passed, the periodic check resumes the account.
	clk.Advance(10 * time.Minute)
	b.Tick(ctx, "acme")
	_, paused, _ = a.Check(ctx, "acme")
	fmt.Println(paused)
	// Output:
	// true quota worker-a 10m0s
	// quota 10m0s
	// false
}
