package quota

import (
	"context"
	"testing"

	"github.com/promptq/promptq/internal/clock"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/redis/go-redis/v9"
)

// benchLimiter returns a limiter on the real Redis with limits high enough
// that every reserve is admitted, so the benchmark measures the round trips.
func benchLimiter(b *testing.B) (*Limiter, string) {
	rdb := testutil.RequireReal(b)
	l, err := New(rdb.Client, Config{Clock: clock.Real{}, RPM: 1 << 40, TPM: 1 << 50})
	if err != nil {
		b.Fatal(err)
	}
	return l, testutil.Name(b)
}

// BenchmarkReserveSettle measures one Reserve + Settle pair (two EVALSHAs) per op.
func BenchmarkReserveSettle(b *testing.B) {
	l, acct := benchLimiter(b)
	ctx := context.Background()
	info := hi(10000, 9000, 1000000, 900000)
	usage := &Usage{InputTokens: 100, OutputTokens: 100}
	b.ReportAllocs()
	for b.Loop() {
		d, err := l.Reserve(ctx, acct, Cost{Requests: 1, Tokens: 300}, 100)
		if err != nil || !d.OK {
			b.Fatalf("Reserve = %+v, %v", d, err)
		}
		if err := l.Settle(ctx, d.Reservation, info, usage); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReserveSettleParallel is the same pair from GOMAXPROCS goroutines
// on one account: the contended case of many workers.
func BenchmarkReserveSettleParallel(b *testing.B) {
	l, acct := benchLimiter(b)
	ctx := context.Background()
	info := hi(10000, 9000, 1000000, 900000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		usage := &Usage{InputTokens: 100, OutputTokens: 100}
		for pb.Next() {
			d, err := l.Reserve(ctx, acct, Cost{Requests: 1, Tokens: 300}, 100)
			if err != nil || !d.OK {
				b.Errorf("Reserve = %+v, %v", d, err)
				return
			}
			if err := l.Settle(ctx, d.Reservation, info, usage); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

var benchTrivial = redis.NewScript("return 1")

// BenchmarkRawEvalsha is the floor: one EVALSHA of a script that does nothing.
func BenchmarkRawEvalsha(b *testing.B) {
	rdb := testutil.RequireReal(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := benchTrivial.Run(ctx, rdb.Client, nil).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawEvalshaParallel is the floor for the parallel variant.
func BenchmarkRawEvalshaParallel(b *testing.B) {
	rdb := testutil.RequireReal(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := benchTrivial.Run(ctx, rdb.Client, nil).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
