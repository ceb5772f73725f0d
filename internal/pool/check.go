package pool

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/promptq/promptq/internal/keys"
	"github.com/promptq/promptq/internal/provider"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// account reads and checks the account at index (1-based) in the list.
func (p *parser) account(m *yaml.Node, index int) (Account, error) {
	a := Account{Tier: TierDefault, Weight: WeightDefault, API: APIOpenAI}
	if m.Kind != yaml.MappingNode {
		return a, &Error{Source: p.src, Line: m.Line, Index: index, Msg: "must be a mapping of fields, got " + kindName(m)}
	}
	f, err := p.fields(m, accountFields, peekName(m), index)
	if err != nil {
		return a, err
	}
	r := &accountReader{p: p, m: m, f: f, index: index}
	// name first: the other errors name the account.
	if a.Name, err = r.name(); err != nil {
		return a, err
	}
	r.acct = a.Name
	if err := r.read(&a); err != nil {
		return a, err
	}
	u, err := r.checkBaseURL(a.BaseURL)
	if err != nil {
		return a, err
	}
	if a.APIKey, err = r.checkKey(a.APIKeyEnv); err != nil {
		return a, err
	}
	if err := r.checkAPI(&a, u); err != nil {
		return a, err
	}
	return a, r.checkDeployments(a)
}

// accountReader reads the fields f of the account mapping m.
type accountReader struct {
	p     *parser
	m     *yaml.Node
	f     map[string]*yaml.Node
	index int
	acct  string // the account's name, once read
}

func (r *accountReader) fail(line int, field, format string, args ...any) error {
	return &Error{Source: r.p.src, Line: line, Account: r.acct, Index: r.index, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// lineOf is the field's line, or the account's when the field is absent.
func (r *accountReader) lineOf(field string) int {
	if v := r.f[field]; v != nil {
		return v.Line
	}
	return r.m.Line
}

func (r *accountReader) name() (string, error) {
	v := r.f["name"]
	if v == nil {
		return "", r.fail(r.m.Line, "name", "is required")
	}
	name, err := r.p.str(v, "", r.index, "name")
	if err != nil {
		return "", err
	}
	if keys.ValidateAccount(name) != nil {
		return "", r.fail(v.Line, "name", "must be 1-64 characters of A-Z a-z 0-9 _ . -, got %s", quote(name))
	}
	return name, nil
}

// read fills a from the fields other than name, each checked on its own.
func (r *accountReader) read(a *Account) error {
	for _, x := range []struct {
		field string
		dst   *string
	}{
		{"base_url", &a.BaseURL}, {"api_key_env", &a.APIKeyEnv}, {"api", &a.API}, {"api_version", &a.APIVersion},
	} {
		if r.f[x.field] == nil {
			*x.dst = ""
			continue
		}
		s, err := r.p.str(r.f[x.field], r.acct, r.index, x.field)
		if err != nil {
			return err
		}
		*x.dst = s
	}
	var tier, weight int64 = TierDefault, WeightDefault
	for _, x := range []struct {
		field  string
		lo, hi int64
		dst    *int64
	}{
		{"tier", 1, TierMax, &tier}, {"weight", 1, WeightMax, &weight},
		{"rpm", 0, LimitMax, &a.RPM}, {"tpm", 0, LimitMax, &a.TPM},
	} {
		if r.f[x.field] == nil {
			continue
		}
		n, err := r.p.integer(r.f[x.field], r.acct, r.index, x.field, x.lo, x.hi)
		if err != nil {
			return err
		}
		*x.dst = n
	}
	a.Tier, a.Weight = int(tier), int(weight)
	var err error
	if r.f["models"] != nil {
		if a.Models, err = r.p.models(r.f["models"], r.acct, r.index); err != nil {
			return err
		}
	}
	if r.f["deployments"] != nil {
		if a.Deployments, err = r.p.deployments(r.f["deployments"], r.acct, r.index); err != nil {
			return err
		}
	}
	return nil
}

// checkBaseURL: an absolute http(s) URL. A URL with credentials in it is
// never echoed.
func (r *accountReader) checkBaseURL(raw string) (*url.URL, error) {
	line := r.lineOf("base_url")
	if raw == "" {
		return nil, r.fail(line, "base_url", "is required, e.g. https://api.openai.com/v1")
	}
	u, perr := url.Parse(raw)
	switch {
	case perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		shown := " got " + quote(raw)
		if strings.Contains(raw, "@") {
			shown = " (value not shown: it may hold a credential)"
		}
		return nil, r.fail(line, "base_url", "must be an absolute http or https URL like https://api.openai.com/v1,%s", shown)
	case u.User != nil:
		return nil, r.fail(line, "base_url", "must not hold credentials (value not shown): the key is read from api_key_env")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, r.fail(line, "base_url", "must not have a query or fragment, got %s", quote(raw))
	}
	return u, nil
}

// checkKey: api_key_env is a variable name, set; the key is its value. The
// value is never echoed, and neither is a name that looks like a key pasted
// in its place.
func (r *accountReader) checkKey(env string) (string, error) {
	line := r.lineOf("api_key_env")
	switch {
	case env == "":
		return "", r.fail(line, "api_key_env", "is required: the name of the environment variable that holds the key")
	case !envNameRE.MatchString(env) || looksLikeKey(env):
		return "", r.fail(line, "api_key_env",
			"must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not the key itself (value not shown)")
	}
	key := r.p.getenv(env)
	if key == "" {
		return "", r.fail(line, "api_key_env", "names %s, which is not set or is empty", env)
	}
	return key, nil
}

// checkAPI checks api and the fields that only go with one API; u is the
// parsed base_url.
func (r *accountReader) checkAPI(a *Account, u *url.URL) error {
	switch a.API {
	case "":
		a.API = APIOpenAI
	case APIOpenAI, APIAzure:
	default:
		return r.fail(r.lineOf("api"), "api", "must be %q or %q, got %s", APIOpenAI, APIAzure, quote(a.API))
	}
	if a.API == APIAzure {
		return r.checkAzure(*a, u)
	}
	if r.f["api_version"] != nil {
		return r.fail(r.lineOf("api_version"), "api_version", "is only for api azure")
	}
	if r.f["deployments"] != nil {
		return r.fail(r.lineOf("deployments"), "deployments", "is only for api azure")
	}
	return nil
}

func (r *accountReader) checkAzure(a Account, u *url.URL) error {
	if a.APIVersion == "" {
		return r.fail(r.lineOf("api_version"), "api_version", "is required with api azure, e.g. 2024-10-21")
	}
	if strings.ContainsAny(a.APIVersion, " \t/?&#") {
		return r.fail(r.lineOf("api_version"), "api_version", "must be an Azure API version like 2024-10-21, got %s", quote(a.APIVersion))
	}
	if u.Scheme == "http" && !provider.IsLoopback(u.Hostname()) {
		return r.fail(r.lineOf("base_url"), "base_url", "must be https with api azure (http only to localhost or a loopback IP), got %s", quote(a.BaseURL))
	}
	if path := strings.TrimSuffix(u.Path, "/"); strings.HasSuffix(path, "/openai") || strings.Contains(path, "/openai/") {
		return r.fail(r.lineOf("base_url"), "base_url",
			"must be the Azure resource endpoint without /openai (like https://NAME.openai.azure.com): the client adds /openai/deployments/..., got %s", quote(a.BaseURL))
	}
	return nil
}

// checkDeployments: with models listed, every deployment maps one of them.
func (r *accountReader) checkDeployments(a Account) error {
	if a.Models == nil {
		return nil
	}
	for model := range a.Deployments {
		if !slices.Contains(a.Models, model) {
			return r.fail(r.lineOf("deployments"), "deployments", "maps %s, which is not in models", quote(model))
		}
	}
	return nil
}

// looksLikeKey reports whether an api_key_env value is more likely a key
// than a variable name: long, no underscore, letters mixed with digits.
// Such a value is never echoed.
func looksLikeKey(s string) bool {
	if len(s) < 20 || strings.Contains(s, "_") {
		return false
	}
	return strings.ContainsAny(s, "0123456789") && strings.IndexFunc(s, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	}) >= 0
}
