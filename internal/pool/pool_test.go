package pool_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/promptq/promptq/internal/pool"
)

const secret = "sk-test-NEVER-SHOWN-0123456789"

// env sets every variable an account may name to secret, except EMPTY.
func env(name string) string {
	if name == "EMPTY" || name == "UNSET" {
		return ""
	}
	return secret
}

// account is a file with one valid account, "east", at line 2, with extra
// lines (indented 4) from line 5.
func account(extra ...string) string {
	s := "accounts:\n  - name: east\n    base_url: https://east.example/v1\n    api_key_env: KEY_EAST\n"
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, want string
	}{
		// the file
		{"empty", "", `pool.yaml: is empty: it must list accounts`},
		{"not a mapping", "- a\n- b\n", `pool.yaml:1: must be a mapping with accounts, got a list`},
		{"bad yaml", "accounts:\n  - name: east\n    tier: 1: 2\n", `pool.yaml:3: is not valid YAML: mapping values are not allowed in this context`},
		{"unterminated yaml", "accounts:\n  - name: [\n", `pool.yaml:2: is not valid YAML: did not find expected node content`},
		{"two documents", account() + "---\naccounts: []\n", `pool.yaml:5: holds a second YAML document: a pool file holds one`},
		{"unknown pool field", "acounts: []\n", `pool.yaml:1: has unknown field "acounts" (known: name, accounts)`},
		{"no accounts", "name: batch\n", `pool.yaml:1: accounts is required: list at least one account`},
		{"accounts empty", "accounts: []\n", `pool.yaml:1: accounts must list at least one account`},
		{"accounts not a list", "accounts: {east: 1}\n", `pool.yaml:1: accounts must be a list of accounts, got a mapping`},
		{"accounts twice", "accounts: []\naccounts: []\n", `pool.yaml:2: accounts is set twice (first at line 1)`},
		{"account not a mapping", "accounts:\n  - east\n", `pool.yaml:2: account #1: must be a mapping of fields, got "east"`},

		// pool name
		{"pool name invalid", "name: a b\n" + account(), `pool.yaml:1: name must be 1-64 characters of A-Z a-z 0-9 _ . -, got "a b"`},
		{"pool name too long", "name: " + strings.Repeat("x", 65) + "\n" + account(), `pool.yaml:1: name must be 1-64 characters of A-Z a-z 0-9 _ . -, got "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."`},
		{"pool name is an account's", "name: east\n" + account(), `pool.yaml:1: name "east" is also the name of the account at line 3: the pool's name must differ from every account's`},
		{"default pool name is an account's", "accounts:\n  - name: pool\n    base_url: https://x.example\n    api_key_env: K\n",
			`pool.yaml:2: account "pool": name "pool" is the pool's default name: rename the account or give the pool another name`},

		// name
		{"name missing", "accounts:\n  - base_url: https://x.example\n", `pool.yaml:2: account #1: name is required`},
		{"name invalid", "accounts:\n  - name: \"{east}\"\n", `pool.yaml:2: account #1: name must be 1-64 characters of A-Z a-z 0-9 _ . -, got "{east}"`},
		{"name not a string", "accounts:\n  - name: [a]\n", `pool.yaml:2: account #1: name must be a string, got a list`},
		{"name duplicate", account() + "  - name: east\n    base_url: https://b.example\n    api_key_env: K\n",
			`pool.yaml:5: account "east": name is already used by the account at line 2`},
		{"unknown field", account("tiers: 2"), `pool.yaml:5: account "east": has unknown field "tiers" (known: name, base_url, api_key_env, models, tier, weight, rpm, tpm, api, api_version, deployments)`},
		{"key in the file", account("api_key: sk-abc"), `pool.yaml:5: account "east": has unknown field "api_key" (known: name, base_url, api_key_env, models, tier, weight, rpm, tpm, api, api_version, deployments); the key is read from the variable api_key_env names, never from the file`},
		{"field twice", account("tier: 1", "tier: 2"), `pool.yaml:6: account "east": tier is set twice (first at line 5)`},

		// base_url
		{"base_url missing", "accounts:\n  - name: east\n    api_key_env: K\n", `pool.yaml:2: account "east": base_url is required, e.g. https://api.openai.com/v1`},
		{"base_url relative", "accounts:\n  - name: east\n    base_url: east.example/v1\n    api_key_env: K\n",
			`pool.yaml:3: account "east": base_url must be an absolute http or https URL like https://api.openai.com/v1, got "east.example/v1"`},
		{"base_url ftp", "accounts:\n  - name: east\n    base_url: ftp://east.example\n    api_key_env: K\n",
			`pool.yaml:3: account "east": base_url must be an absolute http or https URL like https://api.openai.com/v1, got "ftp://east.example"`},
		{"base_url with credentials", "accounts:\n  - name: east\n    base_url: https://u:" + secret + "@east.example\n    api_key_env: K\n",
			`pool.yaml:3: account "east": base_url must not hold credentials (value not shown): the key is read from api_key_env`},
		{"base_url with query", "accounts:\n  - name: east\n    base_url: https://east.example/v1?x=1\n    api_key_env: K\n",
			`pool.yaml:3: account "east": base_url must not have a query or fragment, got "https://east.example/v1?x=1"`},

		// api_key_env
		{"api_key_env missing", "accounts:\n  - name: east\n    base_url: https://east.example\n",
			`pool.yaml:2: account "east": api_key_env is required: the name of the environment variable that holds the key`},
		{"api_key_env unset", "accounts:\n  - name: east\n    base_url: https://east.example\n    api_key_env: UNSET\n",
			`pool.yaml:4: account "east": api_key_env names UNSET, which is not set or is empty`},
		{"api_key_env empty", "accounts:\n  - name: east\n    base_url: https://east.example\n    api_key_env: EMPTY\n",
			`pool.yaml:4: account "east": api_key_env names EMPTY, which is not set or is empty`},
		{"api_key_env holds a key", "accounts:\n  - name: east\n    base_url: https://east.example\n    api_key_env: " + secret + "\n",
			`pool.yaml:4: account "east": api_key_env must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not the key itself (value not shown)`},
		{"api_key_env holds an azure-like key", "accounts:\n  - name: east\n    base_url: https://east.example\n    api_key_env: 0123456789abcdef0123456789abcdef\n",
			`pool.yaml:4: account "east": api_key_env must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not the key itself (value not shown)`},

		// numbers
		{"tier 0", account("tier: 0"), `pool.yaml:5: account "east": tier must be between 1 and 9, got 0`},
		{"tier 10", account("tier: 10"), `pool.yaml:5: account "east": tier must be between 1 and 9, got 10`},
		{"tier text", account("tier: first"), `pool.yaml:5: account "east": tier must be a whole number between 1 and 9, got "first"`},
		{"tier fraction", account("tier: 1.5"), `pool.yaml:5: account "east": tier must be between 1 and 9, got "1.5"`},
		{"weight 0", account("weight: 0"), `pool.yaml:5: account "east": weight must be between 1 and 1000, got 0`},
		{"weight 1001", account("weight: 1001"), `pool.yaml:5: account "east": weight must be between 1 and 1000, got 1001`},
		{"rpm negative", account("rpm: -1"), `pool.yaml:5: account "east": rpm must be between 0 and 1000000000, got -1`},
		{"tpm too big", account("tpm: 2e9"), `pool.yaml:5: account "east": tpm must be between 0 and 1000000000, got "2e9"`},
		{"tpm overflow", account("tpm: 99999999999999999999"), `pool.yaml:5: account "east": tpm must be between 0 and 1000000000, got "99999999999999999999"`},
		{"rpm list", account("rpm: [1]"), `pool.yaml:5: account "east": rpm must be a whole number between 0 and 1000000000, got a list`},

		// api
		{"api unknown", account("api: anthropic"), `pool.yaml:5: account "east": api must be "openai" or "azure", got "anthropic"`},
		{"azure without version", account("api: azure"), `pool.yaml:2: account "east": api_version is required with api azure, e.g. 2024-10-21`},
		{"azure bad version", account("api: azure", "api_version: 2024 10"), `pool.yaml:6: account "east": api_version must be an Azure API version like 2024-10-21, got "2024 10"`},
		{"azure base_url with /openai", "accounts:\n  - name: east\n    base_url: https://east.openai.azure.com/openai\n    api_key_env: K\n    api: azure\n    api_version: 2024-10-21\n",
			`pool.yaml:3: account "east": base_url must be the Azure resource endpoint without /openai (like https://NAME.openai.azure.com): the client adds /openai/deployments/..., got "https://east.openai.azure.com/openai"`},
		{"azure remote http", "accounts:\n  - name: east\n    base_url: http://east.example\n    api_key_env: K\n    api: azure\n    api_version: 2024-10-21\n",
			`pool.yaml:3: account "east": base_url must be https with api azure (http only to localhost or a loopback IP), got "http://east.example"`},
		{"api_version without azure", account("api_version: 2024-10-21"), `pool.yaml:5: account "east": api_version is only for api azure`},
		{"deployments without azure", account("deployments: {m: d}"), `pool.yaml:5: account "east": deployments is only for api azure`},
		{"deployments not a map", account("api: azure", "api_version: v", "deployments: [d]"), `pool.yaml:7: account "east": deployments must map model names to deployment names, got a list`},
		{"deployment name invalid", account("api: azure", "api_version: v", "deployments: {m: a/b}"), `pool.yaml:7: account "east": deployments of "m" must be 1-64 characters of A-Z a-z 0-9 _ . -, got "a/b"`},
		{"deployment twice", account("api: azure", "api_version: v", "deployments: {m: a, m: b}"), `pool.yaml:7: account "east": deployments maps "m" twice`},
		{"deployment of a model not served", account("api: azure", "api_version: v", "models: [a]", "deployments: {b: d}"),
			`pool.yaml:8: account "east": deployments maps "b", which is not in models`},

		// models
		{"models empty", account("models: []"), `pool.yaml:5: account "east": models must list at least one model (leave models out for every model)`},
		{"models not a list", account("models: gpt-4o"), `pool.yaml:5: account "east": models must be a list of model names, got "gpt-4o"`},
		{"models empty name", account("models: [a, '']"), `pool.yaml:5: account "east": models must hold non-empty model names, got ""`},
		{"models null name", account("models:", "  - a", "  -"), `pool.yaml:7: account "east": models must hold non-empty model names, got nothing`},
		{"models duplicate", account("models:", "  - a", "  - a"), `pool.yaml:7: account "east": models lists "a" twice`},
		{"models spaces", account("models: ['a ']"), `pool.yaml:5: account "east": models has a model name with spaces around it: "a "`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := pool.Parse([]byte(tc.file), "pool.yaml", env)
			if err == nil {
				t.Fatalf("no error; pool %+v", p)
			}
			if err.Error() != tc.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:20]) {
				t.Fatalf("error shows the key: %s", err)
			}
			var pe *pool.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *pool.Error", err)
			}
		})
	}
}

// Errors name the account by its index until its name is known, then by
// name; the *Error carries each part.
func TestErrorParts(t *testing.T) {
	t.Parallel()
	_, err := pool.Parse([]byte(account("tier: 0")), "p.yaml", env)
	var pe *pool.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	want := pool.Error{Source: "p.yaml", Line: 5, Account: "east", Index: 1, Field: "tier", Msg: "must be between 1 and 9, got 0"}
	if *pe != want {
		t.Fatalf("error %+v, want %+v", *pe, want)
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	file := `# promptq worker --pool pool.yaml
name: batch
accounts:
  - name: overflow
    base_url: http://127.0.0.1:8000/v1
    api_key_env: KEY_LOCAL
    tier: 3
  - name: east
    base_url: https://east.example/v1
    api_key_env: OPENAI_KEY_EAST
    models: [gpt-4o-mini]
  - name: west
    api: azure
    base_url: https://west.openai.azure.com
    api_key_env: AZURE_KEY_WEST
    api_version: 2024-10-21
    deployments: {gpt-4o-mini: my-4o-mini-deployment}
    tier: 1
    weight: 3
    rpm: 1e3
    tpm: 200_000
`
	got, err := pool.Parse([]byte(file), "pool.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	want := &pool.Pool{Name: "batch", Accounts: []pool.Account{
		{Name: "east", BaseURL: "https://east.example/v1", APIKeyEnv: "OPENAI_KEY_EAST", Models: []string{"gpt-4o-mini"},
			Tier: 1, Weight: 1, API: "openai", APIKey: secret},
		{Name: "west", BaseURL: "https://west.openai.azure.com", APIKeyEnv: "AZURE_KEY_WEST", Tier: 1, Weight: 3,
			RPM: 1000, TPM: 200_000, API: "azure", APIVersion: "2024-10-21",
			Deployments: map[string]string{"gpt-4o-mini": "my-4o-mini-deployment"}, APIKey: secret},
		{Name: "overflow", BaseURL: "http://127.0.0.1:8000/v1", APIKeyEnv: "KEY_LOCAL", Tier: 3, Weight: 1, API: "openai", APIKey: secret},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pool\n got %+v\nwant %+v", got, want)
	}

	// Only the defaults.
	got, err = pool.Parse([]byte(account()), "pool.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	want = &pool.Pool{Name: pool.NameDefault, Accounts: []pool.Account{{Name: "east", BaseURL: "https://east.example/v1",
		APIKeyEnv: "KEY_EAST", Tier: pool.TierDefault, Weight: pool.WeightDefault, API: pool.APIOpenAI, APIKey: secret}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pool\n got %+v\nwant %+v", got, want)
	}
}

// JSON is YAML: the same pool in JSON parses the same, and its errors have
// lines too.
func TestParseJSON(t *testing.T) {
	t.Parallel()
	yml := account("models: [a, b]", "tier: 2", "rpm: 500")
	js := `{
  "accounts": [
    {"name": "east", "base_url": "https://east.example/v1", "api_key_env": "KEY_EAST",
     "models": ["a", "b"], "tier": 2, "rpm": 500}
  ]
}`
	fromYAML, err := pool.Parse([]byte(yml), "pool.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := pool.Parse([]byte(js), "pool.json", env)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, fromJSON) {
		t.Fatalf("json %+v\nyaml %+v", fromJSON, fromYAML)
	}
	_, err = pool.Parse([]byte(strings.Replace(js, `"tier": 2`, `"tier": 12`, 1)), "pool.json", env)
	if want := `pool.json:4: account "east": tier must be between 1 and 9, got 12`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "pool.yaml")
	if err := os.WriteFile(path, []byte(account()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Load(path, env)
	if err != nil || len(p.Accounts) != 1 || p.Accounts[0].APIKey != secret {
		t.Fatalf("Load = %+v, %v", p, err)
	}
	if _, err := pool.Load(filepath.Join(dir, "missing.yaml"), env); err == nil ||
		err.Error() != filepath.Join(dir, "missing.yaml")+": cannot be read: no such file or directory" {
		t.Fatalf("missing file: %v", err)
	}
}

// The key is loaded but never printed: not by fmt with any verb, not by
// encoding/json, for an Account, a *Pool or a Pool.
func TestKeyNeverShown(t *testing.T) {
	t.Parallel()
	p, err := pool.Parse([]byte(account("api: azure", "api_version: v", "deployments: {m: d}")), "pool.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Accounts[0]
	if a.APIKey != secret {
		t.Fatalf("APIKey not loaded")
	}
	var outs []string
	for _, v := range []any{a, &a, p, *p, p.Accounts} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(b))
	}
	outs = append(outs, a.String(), a.GoString(), fmt.Sprint(a), fmt.Sprintln(p))
	hexKey := fmt.Sprintf("%x", secret)
	for _, out := range outs {
		if strings.Contains(out, secret) || strings.Contains(strings.ToLower(out), hexKey) {
			t.Fatalf("key shown: %s", out)
		}
	}
	if s := fmt.Sprintf("%+v", a); !strings.Contains(s, "APIKey:[redacted]") || !strings.Contains(s, "APIKeyEnv:KEY_EAST") {
		t.Fatalf("%%+v = %s, want the fields and APIKey:[redacted]", s)
	}
	if s := fmt.Sprintf("%#v", a); !strings.HasPrefix(s, "pool.Account{Name:\"east\"") {
		t.Fatalf("%%#v = %s", s)
	}
	b, _ := json.Marshal(a)
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["api_key_env"] != "KEY_EAST" || back["deployments"] == nil {
		t.Fatalf("json = %s", b)
	}
}

func TestServes(t *testing.T) {
	t.Parallel()
	every := pool.Account{Name: "a"}
	some := pool.Account{Name: "b", Models: []string{"gpt-4o-mini", "gpt-4o"}}
	for _, tc := range []struct {
		a     pool.Account
		model string
		want  bool
	}{
		{every, "gpt-4o-mini", true},
		{every, "", true},
		{some, "gpt-4o", true},
		{some, "gpt-4o-mini", true},
		{some, "gpt-4", false},
		{some, "", false},
	} {
		if got := tc.a.Serves(tc.model); got != tc.want {
			t.Errorf("%s.Serves(%q) = %v, want %v", tc.a.Name, tc.model, got, tc.want)
		}
	}
}

func TestDeploymentAndLookup(t *testing.T) {
	t.Parallel()
	a := pool.Account{Name: "w", Deployments: map[string]string{"gpt-4o-mini": "dep-mini"}}
	if a.Deployment("gpt-4o-mini") != "dep-mini" || a.Deployment("gpt-4o") != "gpt-4o" {
		t.Fatalf("Deployment: %q %q", a.Deployment("gpt-4o-mini"), a.Deployment("gpt-4o"))
	}
	p := &pool.Pool{Accounts: []pool.Account{a}}
	if got, ok := p.Account("w"); !ok || got.Name != "w" {
		t.Fatal("Account(w) not found")
	}
	if _, ok := p.Account("x"); ok {
		t.Fatal("Account(x) found")
	}
}
