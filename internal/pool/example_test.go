package pool_test

import (
	"fmt"

	"github.com/promptq/promptq/internal/pool"
)

func ExampleParse() {
	file := `
name: batch
accounts:
  - name: overflow
    base_url: http://127.0.0.1:8000/v1
    api_key_env: KEY_LOCAL
    tier: 2
  - name: east
    base_url: https://east.example/v1
    api_key_env: OPENAI_KEY_EAST
    models: [gpt-4o-mini]
    rpm: 500
`
	getenv := func(string) string { return "sk-example" }
	p, err := pool.Parse([]byte(file), "pool.yaml", getenv)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range p.Accounts {
		fmt.Printf("%s tier %d serves gpt-4o: %v\n", a.Name, a.Tier, a.Serves("gpt-4o"))
	}
	fmt.Printf("%+v\n", p.Accounts[0])

	_, err = pool.Parse([]byte("accounts:\n  - name: east\n    tier: 0\n"), "pool.yaml", getenv)
	fmt.Println(err)
	// Output:
	// east tier 1 serves gpt-4o: false
	// overflow tier 2 serves gpt-4o: true
	// {Name:east BaseURL:https://east.example/v1 APIKeyEnv:OPENAI_KEY_EAST Models:[gpt-4o-mini] Tier:1 Weight:1 RPM:500 TPM:0 API:openai APIVersion: Deployments:map[] APIKey:[redacted]}
	// pool.yaml:3: account "east": tier must be between 1 and 9, got 0
}
