package pool

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// APIs an account may speak.
const (
	APIOpenAI = "openai" // OpenAI or an OpenAI-compatible server (the default)
	APIAzure  = "azure"  // Azure OpenAI: deployments, api-version, api-key header
)

// Defaults and bounds of an account's fields.
const (
	TierDefault   = 1
	TierMax       = 9
	WeightDefault = 1
	WeightMax     = 1000
	// LimitMax bounds rpm and tpm. quota.Config accepts any value >= 0; the
	// bound only catches a typo (no provider grants a billion per minute).
	LimitMax = 1_000_000_000
)

// Account is one key at one endpoint that a worker of the pool may send
// prompts to. Its Name is its id in Redis, status, metrics and results.
type Account struct {
	Name      string `json:"name" yaml:"name"`
	BaseURL   string `json:"base_url" yaml:"base_url"`
	APIKeyEnv string `json:"api_key_env" yaml:"api_key_env"` // the environment variable that holds the key
	// Models are the models the account serves; nil = every model.
	Models []string `json:"models,omitempty" yaml:"models,omitempty"`
	// Tier orders accounts: lower tiers are used first (default TierDefault).
	Tier int `json:"tier" yaml:"tier"`
	// Weight is the account's share among accounts of its tier with equal
	// headroom (default WeightDefault).
	Weight int `json:"weight" yaml:"weight"`
	// RPM and TPM cap the account's per-minute limits; 0 = learn them from
	// the provider's headers.
	RPM int64 `json:"rpm" yaml:"rpm"`
	TPM int64 `json:"tpm" yaml:"tpm"`
	// API is APIOpenAI (default) or APIAzure.
	API string `json:"api" yaml:"api"`
	// APIVersion is Azure's api-version query parameter (azure only, required there).
	APIVersion string `json:"api_version,omitempty" yaml:"api_version,omitempty"`
	// Deployments maps a model to its Azure deployment name (azure only; a
	// model not in it is sent under its own name).
	Deployments map[string]string `json:"deployments,omitempty" yaml:"deployments,omitempty"`
	// APIKey is the key, read by Load from the variable APIKeyEnv names. It
	// is never in the file, and String, GoString, Format and MarshalJSON
	// leave it out.
	APIKey string `yaml:"-" json:"-"`
}

// Serves reports whether the account takes requests for model.
func (a Account) Serves(model string) bool {
	return a.Models == nil || slices.Contains(a.Models, model)
}

// Deployment is the name model is sent under: its Azure deployment when the
// account maps it, else model itself.
func (a Account) Deployment(model string) string {
	if d, ok := a.Deployments[model]; ok {
		return d
	}
	return model
}

// redacted is a copy of a whose key is replaced by a marker, as a type
// without methods so that fmt prints its fields.
type redacted Account

const keyMarker = "[redacted]"

func (a Account) redacted() redacted {
	if a.APIKey != "" {
		a.APIKey = keyMarker
	}
	return redacted(a)
}

// String prints the account's fields, with the key (if loaded) as [redacted].
func (a Account) String() string { return fmt.Sprintf("%+v", a.redacted()) }

// GoString is String in Go syntax, for %#v.
func (a Account) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", a.redacted()), "pool.redacted", "pool.Account", 1)
}

// Format prints the account for every verb (%d or %x of the struct would
// otherwise print the key's bytes) without the key.
func (a Account) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, a.GoString())
	case verb == 'v' && f.Flag('+'):
		_, _ = io.WriteString(f, a.String())
	default:
		_, _ = fmt.Fprintf(f, "%v", a.redacted())
	}
}

// MarshalJSON writes the account as it appears in the file, without the key.
func (a Account) MarshalJSON() ([]byte, error) {
	return json.Marshal(redacted(a)) // APIKey is tagged json:"-"
}

var (
	_ fmt.Stringer   = Account{}
	_ fmt.GoStringer = Account{}
	_ fmt.Formatter  = Account{}
	_ json.Marshaler = Account{}
)
