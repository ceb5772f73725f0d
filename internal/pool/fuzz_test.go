package pool_test

import (
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/pool"
)

// Any input gives a pool or one *Error on one line, never a panic, and
// never the key (which only the environment holds).
func FuzzParse(f *testing.F) {
	f.Add([]byte(account()))
	f.Add([]byte(account("api: azure", "api_version: 2024-10-21", "deployments: {m: d}", "models: [m]", "tier: 2")))
	f.Add([]byte(`{"name": "b", "accounts": [{"name": "a", "base_url": "http://h/v1", "api_key_env": "K", "rpm": 1e3}]}`))
	f.Add([]byte("accounts:\n  - &a {name: x}\n  - *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := pool.Parse(data, "f.yaml", env)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || strings.Contains(msg, secret) {
				t.Fatalf("bad error %q", msg)
			}
			return
		}
		if len(p.Accounts) == 0 {
			t.Fatal("a pool without accounts")
		}
		for i, a := range p.Accounts {
			if a.APIKey != secret || a.Tier < 1 || a.Tier > pool.TierMax || a.Weight < 1 || a.Name == p.Name {
				t.Fatalf("invalid account %+v", a)
			}
			if i > 0 && p.Accounts[i-1].Tier > a.Tier {
				t.Fatal("accounts not sorted by tier")
			}
		}
	})
}
