package tests

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/fakeopenai"
	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
	"github.com/promptq/promptq/pausegate"
	"github.com/promptq/promptq/quota"
)

// TestFaultRedisCluster checks what promptq needs from Redis Cluster on a
// three-node cluster of the test's own: every key of one account hashes to
// one slot (so each Lua script, whose keys are all one account's, may run
// there), the quota and pause scripts run through a cluster client, a
// pool's peek reaches accounts on several nodes in one call, and worker
// processes and the CLI run a batch with a redis-cluster:// URL
// (config.ParseRedisURL in internal/config/redis.go).
func TestFaultRedisCluster(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed")
	}
	t.Parallel()
	ctx := context.Background()
	var nodes []*redisServer
	var addrs []string
	for range 3 {
		n := startRedisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		nodes = append(nodes, n)
		addrs = append(addrs, n.Addr)
	}
	create := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		c := n.client(t)
		waitFor(t, 20*time.Second, n.Addr+" to report cluster_state:ok", func() bool {
			info, err := c.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		}, nil)
	}
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer rc.Close()
	waitFor(t, 10*time.Second, "the cluster client to see 16384 slots", func() bool {
		slots, err := rc.ClusterSlots(ctx).Result()
		covered := 0
		for _, s := range slots {
			covered += int(s.End-s.Start) + 1
		}
		return err == nil && covered == 16384
	}, nil)

	account := "a-" + testutil.Name(t)
	t.Run("account keys share a slot", func(t *testing.T) {
		accountKeys := []string{keys.Limits(account), keys.Inflight(account), keys.Day(account, "2026-01-01"),
			keys.Pause(account), keys.Events(account), keys.Queues(account), keys.Stats(account)}
		want, err := rc.ClusterKeySlot(ctx, accountKeys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range accountKeys[1:] {
			if got, err := rc.ClusterKeySlot(ctx, k).Result(); err != nil || got != want {
				t.Errorf("CLUSTER KEYSLOT %s = %d (%v), want %d like %s", k, got, err, want, accountKeys[0])
			}
		}
	})

	t.Run("quota scripts", func(t *testing.T) {
		l, err := quota.New(rc, quota.Config{RPM: 600, TPM: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.Reserve(ctx, account, quota.Cost{Requests: 1, Tokens: 100}, 20)
		if err != nil {
			t.Fatalf("Reserve on the cluster: %v", err)
		}
		if !d.OK {
			t.Fatalf("Reserve on the cluster: %+v, want admitted", d)
		}
		if err := l.Settle(ctx, d.Reservation, quota.Unknown, &quota.Usage{InputTokens: 20, OutputTokens: 30, TotalTokens: 50}); err != nil {
			t.Fatalf("Settle on the cluster: %v", err)
		}
		snap, err := l.Snapshot(ctx, account)
		if err != nil {
			t.Fatalf("Snapshot on the cluster: %v", err)
		}
		if snap.InFlight != 0 || snap.Daily.Requests != 1 {
			t.Errorf("snapshot after Reserve+Settle: in flight %d, daily requests %d; want 0 and 1", snap.InFlight, snap.Daily.Requests)
		}
	})

	t.Run("pause gate scripts", func(t *testing.T) {
		g, err := pausegate.New(rc, pausegate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Pause(ctx, account, pausegate.PauseRequest{Until: time.Now().Add(time.Hour), Reason: "cluster", Kind: pausegate.KindManual}); err != nil {
			t.Fatalf("Pause on the cluster: %v", err)
		}
		rec, active, err := g.Check(ctx, account)
		if err != nil || !active || rec.Reason != "cluster" {
			t.Fatalf("Check after Pause on the cluster: %+v, active %v, %v; want the pause", rec, active, err)
		}
		if ok, err := g.Resume(ctx, account); err != nil || !ok {
			t.Fatalf("Resume on the cluster: %v, %v", ok, err)
		}
		if _, active, err := g.Check(ctx, account); err != nil || active {
			t.Errorf("Check after Resume: active %v, %v; want not paused", active, err)
		}
	})

	// A pool's accounts hash to different slots (nodes): one Peek pipelines
	// the read-only reserve script to each, and a model pause runs there.
	t.Run("pool peek across slots", func(t *testing.T) {
		l, err := quota.New(rc, quota.Config{RPM: 600, TPM: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		var cands []quota.Candidate
		slots := map[int64]bool{}
		for i := range 6 {
			a := fmt.Sprintf("%s-p%d", account, i)
			cands = append(cands, quota.Candidate{Limiter: l, Account: a})
			slot, err := rc.ClusterKeySlot(ctx, keys.Limits(a)).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
		}
		if len(slots) < 2 {
			t.Fatalf("the pool's accounts all hash to one slot; the test needs several")
		}
		g, err := pausegate.New(rc, pausegate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.PauseModel(ctx, cands[1].Account, "gpt-x", time.Now().Add(time.Hour), "model_not_found"); err != nil {
			t.Fatalf("PauseModel on the cluster: %v", err)
		}
		hs, err := quota.Peek(ctx, rc, cands, quota.Input{Chars: 100}, 50, quota.WithModel("gpt-x"))
		if err != nil {
			t.Fatalf("Peek on the cluster: %v", err)
		}
		for i, h := range hs {
			if want := i != 1; h.Fits != want || (i == 1 && !h.ModelPaused) {
				t.Errorf("account %d: %+v; want fits %v (account 1 paused for gpt-x)", i, h, want)
			}
		}
	})

	// The whole path on the cluster: two worker processes and the CLI with a
	// redis-cluster:// URL, asynq's cluster client underneath.
	t.Run("end-to-end batch", func(t *testing.T) {
		s := newSetup(t, fakeopenai.Config{RPM: 6000, Latency: 20 * time.Millisecond})
		s.Redis = "redis-cluster://" + addrs[0] + "?addr=" + addrs[1] + "&addr=" + addrs[2]
		workers := s.startWorkers(t, 2, 4)
		lines := batch(s.Queue, "cluster", 20)
		s.enqueue(t, lines)
		s.waitCompleted(t, len(lines), 60*time.Second)
		requireAllCompleted(t, s.results(t), ids(lines))
		stopAll(t, workers)
	})
}
