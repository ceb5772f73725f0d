package keys_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// The asynq key names match what asynq really writes, so a change of its
// layout (on an upgrade) fails here rather than leaving test data behind.
func TestAsynqKeysMatchAsynq(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, queue, client := asynqQueue(t)
	if _, err := client.EnqueueContext(ctx, asynq.NewTask("keys:test", nil), asynq.Queue(queue), asynq.TaskID("t-1")); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.Client.SIsMember(ctx, keys.AsynqQueues(), queue).Result(); err != nil || !ok {
		t.Fatalf("%s does not list queue %s: %v, %v", keys.AsynqQueues(), queue, ok, err)
	}
	found := scan(t, r, keys.AsynqQueuePattern(queue))
	want := map[string]bool{"asynq:{" + queue + "}:t:t-1": false, "asynq:{" + queue + "}:pending": false}
	for _, k := range found {
		if _, ok := want[k]; ok {
			want[k] = true
		}
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("%s does not match asynq's key %s (matched %q)", keys.AsynqQueuePattern(queue), k, found)
		}
	}
}

// The bench counts finished tasks with ZCARD on AsynqCompleted and
// AsynqArchived: both must be the sets asynq's Inspector counts. Only the
// archived set gets a member here (completing a task takes a server); the
// bench's own tests run tasks to completion.
func TestAsynqFinishedSetsMatchInspector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, queue, client := asynqQueue(t)
	for _, id := range []string{"a-1", "a-2"} {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("keys:test", nil), asynq.Queue(queue), asynq.TaskID(id)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(r.Client)
	if err := insp.ArchiveTask(queue, "a-1"); err != nil {
		t.Fatal(err)
	}
	info, err := insp.GetQueueInfo(queue)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.Client.ZCard(ctx, keys.AsynqArchived(queue)).Val(); n != int64(info.Archived) || n != 1 {
		t.Errorf("ZCARD %s = %d, Inspector counts %d archived (want 1)", keys.AsynqArchived(queue), n, info.Archived)
	}
	if n := r.Client.ZCard(ctx, keys.AsynqCompleted(queue)).Val(); n != int64(info.Completed) {
		t.Errorf("ZCARD %s = %d, Inspector counts %d completed", keys.AsynqCompleted(queue), n, info.Completed)
	}
}

// asynqQueue returns a Redis, a queue name of its own (removed when t ends)
// and an asynq client on that Redis.
func asynqQueue(t *testing.T) (*testutil.Redis, string, *asynq.Client) {
	t.Helper()
	r := testutil.NewRedis(t)
	queue := "q-" + testutil.Name(t)
	t.Cleanup(func() { testutil.DeleteAsynqQueue(t, r.Client, queue) })
	return r, queue, asynq.NewClientFromRedisClient(r.Client)
}
