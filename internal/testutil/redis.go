// Package testutil holds helpers shared by promptq's tests.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
)

// Redis is a Redis server for one test: real when TEST_REDIS_URL (or
// REDIS_URL) is set, miniredis otherwise.
type Redis struct {
	Client *redis.Client
	URL    string               // redis:// URL workers and asynq can dial
	Mini   *miniredis.Miniredis // nil on real Redis
}

// Real reports whether the server is a real Redis.
func (r *Redis) Real() bool { return r.Mini == nil }

// NewRedis returns a Redis for t and registers its cleanup. Tests must
// isolate themselves by key prefix (see Name); nothing here flushes data.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		url = os.Getenv("REDIS_URL")
	}
	if url == "" {
		m := miniredis.RunT(t)
		url = "redis://" + m.Addr() + "/0"
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return &Redis{Client: c, URL: url, Mini: m}
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("TEST_REDIS_URL %s: %v", opt.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &Redis{Client: c, URL: url}
}

// RequireReal skips t unless a real Redis is configured.
func RequireReal(t testing.TB) *Redis {
	t.Helper()
	r := NewRedis(t)
	if !r.Real() {
		t.Skip("needs a real Redis: set TEST_REDIS_URL")
	}
	return r
}

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_.\-]`)

// Name returns a short name unique to this test run, usable as an account or
// queue name: test name plus random suffix.
func Name(t testing.TB) string {
	n := unsafe.ReplaceAllString(t.Name(), "-")
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.Trim(n, "-.") + "-" + hex.EncodeToString(b)
}

// DeleteAsynqQueue removes every key of an asynq queue a test created
// (asynq's own DeleteQueue leaves completed tasks behind) and its entry in
// asynq's queue list. It touches nothing else.
func DeleteAsynqQueue(t testing.TB, c *redis.Client, queue string) {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, keys.AsynqQueuePattern(queue), 500).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
	c.SRem(ctx, keys.AsynqQueues(), queue)
}

// CleanupAccount registers the removal of every promptq key of an account
// (all share the prefix promptq:{acct}:) when t ends.
func CleanupAccount(t testing.TB, c *redis.Client, account string) {
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, keys.AccountPattern(account), 500).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.SRem(ctx, keys.Accounts(), account)
	})
}
