package fakeopenai

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sentinels for AccountSpec fields whose zero value means "the base
// Config's value".
const (
	// Unlimited as AccountSpec.RPM or TPM lifts the limit, whatever the base.
	Unlimited = -1
	// NoLatency as AccountSpec.Latency removes latency, whatever the base.
	NoLatency time.Duration = -1
)

// accountName is what an account name may be: it becomes a URL path segment.
var accountName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// validName reports whether name can be an account: it matches accountName
// and is not a name the router or URL resolution would take for something
// else.
func validName(name string) bool {
	return accountName.MatchString(name) && name != "_fake" && name != "." && name != ".."
}

// AccountSpec is one account of a multi-account fake (NewAccounts): a name
// and what differs from the base Config. A zero field keeps the base value.
type AccountSpec struct {
	// Name is the account's path segment (/<Name>/v1/...) and its key in
	// admin answers; [A-Za-z0-9_.-], 1-64 characters, not "_fake", "." or "..".
	Name string
	// RPM and TPM are the account's limits; 0 keeps the base's, Unlimited
	// lifts the limit.
	RPM, TPM int
	// Latency is added to every admitted request; 0 keeps the base's,
	// NoLatency removes it.
	Latency time.Duration
	// Charge is the account's charge model; empty keeps the base's.
	Charge Charge
	// Mode is the mode the account starts in; empty is ModeNormal.
	Mode Mode
	// Models are the models the account serves; empty keeps the base's
	// (Config.Models).
	Models []string
	// APIKey is the key the account requires; empty keeps the base's.
	APIKey string
}

// Validate reports the first field that is out of range.
func (a AccountSpec) Validate() error {
	switch {
	case !validName(a.Name):
		return fmt.Errorf("fakeopenai: account name must match %s and not be _fake, . or .., got %q", accountName, a.Name)
	case a.RPM < Unlimited:
		return fmt.Errorf("fakeopenai: account %s: RPM must be >= 0 or Unlimited (0 = base), got %d", a.Name, a.RPM)
	case a.TPM < Unlimited:
		return fmt.Errorf("fakeopenai: account %s: TPM must be >= 0 or Unlimited (0 = base), got %d", a.Name, a.TPM)
	case a.Latency < NoLatency:
		return fmt.Errorf("fakeopenai: account %s: Latency must be >= 0 or NoLatency (0 = base), got %s", a.Name, a.Latency)
	case a.Charge != "" && !a.Charge.Valid():
		return fmt.Errorf("fakeopenai: account %s: Charge must be simple, chars or tokenizer (empty = base), got %q", a.Name, a.Charge)
	case a.Mode != "" && !a.Mode.Valid():
		return fmt.Errorf("fakeopenai: account %s: unknown Mode %q", a.Name, a.Mode)
	case slices.Contains(a.Models, ""):
		return fmt.Errorf("fakeopenai: account %s: Models must not contain an empty name, got %q", a.Name, a.Models)
	}
	return nil
}

// config returns base with a's overrides.
func (a AccountSpec) config(base Config) Config {
	c := base
	c.RPM = override(c.RPM, a.RPM, Unlimited, 0)
	c.TPM = override(c.TPM, a.TPM, Unlimited, 0)
	c.Latency = override(c.Latency, a.Latency, NoLatency, 0)
	c.Charge = cmp.Or(a.Charge, c.Charge)
	c.APIKey = cmp.Or(a.APIKey, c.APIKey)
	if len(a.Models) > 0 {
		c.Models = slices.Clone(a.Models)
	}
	return c
}

// override returns v unless it is zero (keep base) or the sentinel (none).
func override[T comparable](base, v, sentinel, none T) T {
	var zero T
	switch v {
	case zero:
		return base
	case sentinel:
		return none
	}
	return v
}

// accountKeys are the keys ParseAccountSpec accepts, with their allowed
// values, for error messages.
var accountKeys = []struct{ key, allowed string }{
	{"rpm", "an integer 0-1000000000 (0 = unlimited)"},
	{"tpm", "an integer 0-1000000000 (0 = unlimited)"},
	{"latency", "a duration >= 0 such as 2s or 150ms (0 = none)"},
	{"charge", "simple, chars or tokenizer"},
	{"mode", "one of " + modeNames()},
	{"models", "model names separated by '|', such as gpt-4o-mini|gpt-4.1"},
	{"key_env", "the name of a set environment variable holding the account's API key"},
}

// maxLimit bounds rpm and tpm in a spec.
const maxLimit = 1_000_000_000

// ParseAccountSpec parses a flag value naming one account and what differs
// from the base config: "name" or "name:key=value,key=value", for example
// "east:rpm=300,tpm=24000" or "overflow:rpm=60,tpm=20000,latency=2s".
// Keys: rpm, tpm (0 = unlimited), latency (0 = none), charge, mode (the
// starting mode), models ('|' separated) and key_env (the environment
// variable holding the key the account requires; the key is read now and
// never appears in an error). A key left out keeps the base value.
func ParseAccountSpec(s string) (AccountSpec, error) {
	name, settings, hasSettings := strings.Cut(s, ":")
	a := AccountSpec{Name: name}
	if !validName(name) {
		return AccountSpec{}, fmt.Errorf("fakeopenai: account %q: the name must match %s and not be _fake, . or .. (spec is name[:key=value,...])", name, accountName)
	}
	if !hasSettings {
		return a, nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(settings, ",") {
		key, value, ok := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		allowed := allowedValues(key)
		switch {
		case allowed == "":
			return AccountSpec{}, fmt.Errorf("fakeopenai: account %s: unknown key %q (keys: %s)", name, key, keyNames())
		case !ok || value == "":
			return AccountSpec{}, fmt.Errorf("fakeopenai: account %s: %s needs a value: %s", name, key, allowed)
		case seen[key]:
			return AccountSpec{}, fmt.Errorf("fakeopenai: account %s: %s given twice", name, key)
		}
		seen[key] = true
		if err := a.set(key, value); err != nil {
			if key == "key_env" {
				return AccountSpec{}, fmt.Errorf("fakeopenai: account %s: key_env: %w", name, err)
			}
			return AccountSpec{}, fmt.Errorf("fakeopenai: account %s: %s must be %s, got %q", name, key, allowed, value)
		}
	}
	return a, nil
}

// set applies one key=value; an error means value is out of range (for
// key_env, the error says why).
func (a *AccountSpec) set(key, value string) error {
	bad := errors.New("out of range")
	switch key {
	case "rpm", "tpm":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > maxLimit {
			return bad
		}
		if n == 0 {
			n = Unlimited
		}
		if key == "rpm" {
			a.RPM = n
		} else {
			a.TPM = n
		}
	case "latency":
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return bad
		}
		a.Latency = cmp.Or(d, NoLatency)
	case "charge":
		if !Charge(value).Valid() {
			return bad
		}
		a.Charge = Charge(value)
	case "mode":
		if !Mode(value).Valid() {
			return bad
		}
		a.Mode = Mode(value)
	case "models":
		models := strings.Split(value, "|")
		for i, m := range models {
			models[i] = strings.TrimSpace(m)
		}
		if slices.Contains(models, "") {
			return bad
		}
		a.Models = models
	case "key_env":
		key := os.Getenv(value)
		if key == "" {
			return fmt.Errorf("environment variable %s is not set or empty", value)
		}
		a.APIKey = key
	}
	return nil
}

func allowedValues(key string) string {
	for _, k := range accountKeys {
		if k.key == key {
			return k.allowed
		}
	}
	return ""
}

func keyNames() string {
	names := make([]string, len(accountKeys))
	for i, k := range accountKeys {
		names[i] = k.key
	}
	return strings.Join(names, ", ")
}
