package keys_test

import (
	"context"
	"testing"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/testutil"
)

// AccountPattern matches every key of the account and none of another's.
func TestAccountPattern(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testutil.NewRedis(t)
	acct, other := testutil.Name(t), testutil.Name(t)
	for _, k := range []string{keys.Limits(acct), keys.Pause(acct), keys.Tenant(acct, "team-a"), keys.Limits(other)} {
		if err := r.Client.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Client.Del(context.Background(), k) })
	}
	found := scan(t, r, keys.AccountPattern(acct))
	if len(found) != 3 {
		t.Fatalf("%s matched %q, want the account's 3 keys only", keys.AccountPattern(acct), found)
	}
}

// scan returns the keys matching pattern.
func scan(t *testing.T, r *testutil.Redis, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	var found []string
	iter := r.Client.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		found = append(found, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}
