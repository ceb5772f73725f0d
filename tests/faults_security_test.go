package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
)

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestFaultRedisAuth: workers and the CLI run a batch against a Redis that
// requires a password (requirepass, the default user) and against one
// reached as an ACL user; the password never appears in any log or output,
// and a wrong password is reported without echoing it.
func TestFaultRedisAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// secure configures the server (reached by admin, the default
		// user without a password) and returns the URL's userinfo.
		secure func(t *testing.T, admin *redis.Client, pw string) string
	}{
		{name: "requirepass", secure: func(t *testing.T, admin *redis.Client, pw string) string {
			// spawnRedis waits for an unauthenticated PING, so the password
			// is set once the server runs (the same as --requirepass).
			if err := admin.ConfigSet(context.Background(), "requirepass", pw).Err(); err != nil {
				t.Fatal(err)
			}
			return ":" + pw
		}},
		{name: "ACL user", secure: func(t *testing.T, admin *redis.Client, pw string) string {
			ctx := context.Background()
			if err := admin.Do(ctx, "ACL", "SETUSER", "promptq", "on", ">"+pw, "~*", "&*", "+@all").Err(); err != nil {
				t.Fatal(err)
			}
			// The default user gets a password nobody knows, so only the
			// promptq user can connect.
			if err := admin.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+randomHex(t, 16)).Err(); err != nil {
				t.Fatal(err)
			}
			return "promptq:" + pw
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startRedisServer(t)
			pw := "pw-" + randomHex(t, 12)
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
			userinfo := tc.secure(t, admin, pw)
			_ = admin.Close()
			url := fmt.Sprintf("redis://%s@%s/0", userinfo, srv.Addr)
			s := newSetupOn(t, url, fakeopenai.Config{})

			if _, errOut, code := runCLI(t, "", "status", "--redis", strings.Replace(url, pw, "wrong-"+pw, 1)); code == 0 || strings.Contains(errOut, pw) {
				t.Errorf("status with a wrong password: exit %d, stderr %q; want an error that does not echo the password", code, errOut)
			}

			lines := batch(s.Queue, "auth", 8)
			// Workers start first: a worker that cannot authenticate exits
			// with a one-line error, which waitStarted reports.
			workers := s.startWorkers(t, 2, 4, "--log-level", "debug")
			s.enqueue(t, lines)
			s.requireNoLoss(t, lines, 30*time.Second)
			stopAll(t, workers)

			out, errOut, _ := runCLI(t, "", "status", "--redis", url)
			for _, w := range workers {
				if strings.Contains(w.Logs(), pw) {
					t.Errorf("%s logged the Redis password", w.name)
				}
			}
			if strings.Contains(out+errOut, pw) {
				t.Errorf("`promptq status` printed the Redis password")
			}
		})
	}
}

// TestFaultSecretsNotStored: after a batch run with a recognisable API key
// (debug logging, a streamed and an invalid task among them), the key is in
// no Redis key name nor value (every type dumped), no worker log line and
// no `promptq results` or `status` output. The fake provider requires the
// key, so the workers did send it.
func TestFaultSecretsNotStored(t *testing.T) {
	t.Parallel()
	secret := "sk-test-SECRET-" + randomHex(t, 12)
	srv := startRedisServer(t)
	s := newSetupOn(t, srv.URL, fakeopenai.Config{APIKey: secret})
	lines := batch(s.Queue, "secret", 10)
	invalid := taskLine{ID: "secret-invalid", Model: "bad-model", Input: "hello", Queue: s.Queue}
	s.enqueue(t, append(lines, invalid))

	var workers []*proc
	for range 2 {
		workers = append(workers, startWorker(t, []string{"OPENAI_API_KEY=" + secret}, s.workerArgs(4, "--log-level", "debug")...))
	}
	for _, w := range workers {
		w.waitStarted(t)
	}
	var last queueCounts
	waitFor(t, 30*time.Second, "10 completed and 1 archived", func() bool {
		last = s.queueStatus(t)
		return last.Completed == len(lines) && last.Archived == 1
	}, func() string { return jsonString(last) })
	stopAll(t, workers)
	if st := s.Fake.Stats(); st.AuthErrors != 0 || st.OK != len(lines) {
		t.Fatalf("provider: %d auth errors, %d ok; the workers did not send the key: %s", st.AuthErrors, st.OK, jsonString(st))
	}

	// The secret and its distinctive tail (a prefix or suffix might be logged).
	needles := []string{secret, secret[len("sk-test-"):], secret[len(secret)-12:]}
	ctx := context.Background()
	c := srv.client(t)
	nkeys := 0
	it := c.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		key := it.Val()
		nkeys++
		dump := key + "\n" + dumpValue(t, c, key)
		if found := hasAny(dump, needles...); len(found) > 0 {
			t.Errorf("Redis key %q holds the API key (%q)", key, found[0])
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if found := hasAny(w.Logs(), needles...); len(found) > 0 {
			t.Errorf("%s logged the API key (%q)", w.name, found[0])
		}
	}
	out, errOut, _ := runCLI(t, "", "results", "--redis", s.Redis, "--queue", s.Queue)
	sout, serr, _ := runCLI(t, "", "status", "--redis", s.Redis, "--json")
	if found := hasAny(out+errOut+sout+serr, needles...); len(found) > 0 {
		t.Errorf("`promptq results` or `status` printed the API key (%q)", found[0])
	}
	t.Logf("scanned %d Redis keys and %d bytes of worker logs", nkeys, len(workers[0].Logs())+len(workers[1].Logs()))
}

// dumpValue renders every element of key's value as text, whatever its type.
func dumpValue(t *testing.T, c *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := c.Type(ctx, key).Result()
	if err != nil {
		t.Fatalf("TYPE %s: %v", key, err)
	}
	var v any
	switch typ {
	case "string":
		v, err = c.Get(ctx, key).Result()
	case "hash":
		v, err = c.HGetAll(ctx, key).Result()
	case "list":
		v, err = c.LRange(ctx, key, 0, -1).Result()
	case "set":
		v, err = c.SMembers(ctx, key).Result()
	case "zset":
		v, err = c.ZRangeWithScores(ctx, key, 0, -1).Result()
	case "stream":
		v, err = c.XRange(ctx, key, "-", "+").Result()
	case "none": // expired between SCAN and TYPE
		return ""
	default:
		t.Fatalf("key %s has type %s, which the scan does not read", key, typ)
	}
	if err != nil && err != redis.Nil {
		t.Fatalf("read %s (%s): %v", key, typ, err)
	}
	return fmt.Sprintf("%v", v)
}
