package quota_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/quota"
	"github.com/redis/go-redis/v9"
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

	clk := clock.NewFake(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	l, err := quota.New(rdb, quota.Config{Clock: clk, RPM: 60, TPM: 10000})
	if err != nil {
		panic(err)
	}

	// 800 estimated input tokens + max_output_tokens 1200.
	d, err := l.Reserve(ctx, "acme", quota.Cost{Requests: 1, Tokens: 2000}, 800)
	if err != nil {
		panic(err)
	}
	fmt.Println("admitted:", d.OK)

	// The provider answered: 700 input tokens, 300 output, and headers.
	info := quota.Unknown
	info.Tokens = quota.Bucket{Limit: 10000, Remaining: 7900, Reset: 12 * time.Second}
	usage := quota.Usage{InputTokens: 700, OutputTokens: 300, TotalTokens: 1000}
	if err := l.Settle(ctx, d.Reservation, info, &usage); err != nil {
		panic(err)
	}

	s, err := l.Snapshot(ctx, "acme")
	if err != nil {
		panic(err)
	}
	fmt.Printf("tokens: limit %d from %s, %.0f available\n", s.Tokens.Limit, s.Tokens.Source, s.Tokens.Available)
	fmt.Printf("today: %d request, %d tokens\n", s.Daily.Requests, s.Daily.Tokens)

	// A cost that fits no more waits.
	d, _ = l.Reserve(ctx, "acme", quota.Cost{Requests: 1, Tokens: 8000}, 6000)
	fmt.Println("admitted:", d.OK, "wait:", d.Wait)
	// Output:
	// admitted: true
	// tokens: limit 10000 from headers, 7900 available
	// today: 1 request, 1000 tokens
	// admitted: false wait: 600ms
}
