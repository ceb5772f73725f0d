// Package pool reads the pool file: the accounts (keys at endpoints) that
// workers may route a queue's tasks to.
//
// # The file
//
// YAML, or JSON (which is YAML too). Keys never go in the file: each account
// names the environment variable that holds its key.
//
//	# promptq worker --pool pool.yaml   (or PROMPTQ_POOL=pool.yaml)
//	name: batch                       # optional; default "pool": the namespace of the pool's shared task claims/answers, [A-Za-z0-9_.-]{1,64}, must differ from every account name
//	accounts:
//	  - name: east                      # [A-Za-z0-9_.-]{1,64}, unique: the account's id in status, metrics and results
//	    base_url: https://east.example/v1
//	    api_key_env: OPENAI_KEY_EAST    # the key is read from this variable, which must be set
//	    models: [gpt-4o-mini]           # optional; absent = every model
//	    tier: 1                         # optional, 1-9; lower tiers are used first (default 1)
//	    weight: 1                       # optional, 1-1000; share among accounts of a tier with equal headroom (default 1)
//	    rpm: 0                          # optional caps, 0-1e9, 0 = learn from headers
//	    tpm: 0
//	  - name: west-azure
//	    api: azure                      # optional: openai (default) or azure
//	    base_url: https://west.openai.azure.com   # azure: the resource endpoint, without /openai
//	    api_key_env: AZURE_KEY_WEST
//	    api_version: 2024-10-21         # azure only (required there)
//	    deployments: {gpt-4o-mini: my-4o-mini-deployment}   # azure only: model -> deployment (absent = the model's name)
//	    tier: 2
//
// # Usage
//
//	p, err := pool.Load(path, os.Getenv)
//	if err != nil {
//		return err // e.g. pool.yaml:7: account "east": tier must be between 1 and 9, got 0
//	}
//	for _, a := range p.Accounts { // sorted by tier, then file order
//		if a.Serves(model) {
//			// send to a.BaseURL with a.APIKey, model as a.Deployment(model)
//		}
//	}
//
// Load rejects unknown fields and values out of range with one *Error, one
// line naming the file, the line, the account and the field. Neither an
// error nor an Account printed with fmt or encoding/json shows a key.
package pool
