package pool

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/promptq/promptq/internal/keys"
)

// NameDefault is the pool's name when the file gives none.
const NameDefault = "pool"

// Pool is the set of accounts a worker may send a task to.
type Pool struct {
	// Name is the namespace of the pool's shared task claims and answers
	// (default NameDefault). It differs from every account's name.
	Name string `json:"name" yaml:"name"`
	// Accounts are sorted by Tier, then by their order in the file.
	Accounts []Account `json:"accounts" yaml:"accounts"`
}

// Account returns the account called name.
func (p *Pool) Account(name string) (Account, bool) {
	i := slices.IndexFunc(p.Accounts, func(a Account) bool { return a.Name == name })
	if i < 0 {
		return Account{}, false
	}
	return p.Accounts[i], true
}

// Load reads the pool file at path and returns the pool, validated, with
// defaults filled and each account's key read with getenv (os.Getenv when
// nil). Any error is an *Error.
func Load(path string, getenv func(string) string) (*Pool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already the error's source
		}
		return nil, &Error{Source: path, Msg: "cannot be read: " + oneLine(err.Error())}
	}
	return Parse(data, path, getenv)
}

// Parse is Load for a file already read; source names it in errors.
func Parse(data []byte, source string, getenv func(string) string) (*Pool, error) {
	p := parser{src: cmp.Or(source, "pool"), getenv: getenv}
	if p.getenv == nil {
		p.getenv = os.Getenv
	}
	return p.parse(data)
}

var (
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	deploymentRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)
)

// Fields of the file, in the order the docs list them.
var (
	poolFields    = []string{"name", "accounts"}
	accountFields = []string{"name", "base_url", "api_key_env", "models", "tier", "weight",
		"rpm", "tpm", "api", "api_version", "deployments"}
)

type parser struct {
	src    string
	getenv func(string) string
}

func (p *parser) errorf(line int, format string, args ...any) *Error {
	return &Error{Source: p.src, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parse(data []byte) (*Pool, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.errorf(0, "is empty: it must list accounts")
		}
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.yamlError(err)
		}
		return nil, p.errorf(extra.Line, "holds a second YAML document: a pool file holds one")
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = deref(root.Content[0])
	}
	if root.Kind != yaml.MappingNode {
		return nil, p.errorf(root.Line, "must be a mapping with accounts, got %s", kindName(root))
	}
	top, err := p.fields(root, poolFields, "", 0)
	if err != nil {
		return nil, err
	}

	pool := &Pool{Name: NameDefault}
	nameLine := 0
	if v := top["name"]; v != nil {
		s, err := p.str(v, "", 0, "name")
		if err != nil {
			return nil, err
		}
		if keys.ValidateAccount(s) != nil {
			return nil, &Error{Source: p.src, Line: v.Line, Field: "name",
				Msg: fmt.Sprintf("must be 1-64 characters of A-Z a-z 0-9 _ . -, got %s", quote(s))}
		}
		pool.Name, nameLine = s, v.Line
	}

	list := top["accounts"]
	if list == nil {
		return nil, &Error{Source: p.src, Line: root.Line, Field: "accounts", Msg: "is required: list at least one account"}
	}
	if list.Kind != yaml.SequenceNode {
		return nil, &Error{Source: p.src, Line: list.Line, Field: "accounts", Msg: "must be a list of accounts, got " + kindName(list)}
	}
	if len(list.Content) == 0 {
		return nil, &Error{Source: p.src, Line: list.Line, Field: "accounts", Msg: "must list at least one account"}
	}
	seen := make(map[string]int) // name -> line
	for i, item := range list.Content {
		a, err := p.account(deref(item), i+1)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[a.Name]; dup {
			return nil, &Error{Source: p.src, Line: item.Line, Account: a.Name, Index: i + 1, Field: "name",
				Msg: fmt.Sprintf("is already used by the account at line %d", first)}
		}
		seen[a.Name] = item.Line
		if a.Name == pool.Name {
			if nameLine == 0 {
				return nil, &Error{Source: p.src, Line: item.Line, Account: a.Name, Index: i + 1, Field: "name",
					Msg: fmt.Sprintf("%q is the pool's default name: rename the account or give the pool another name", a.Name)}
			}
			return nil, &Error{Source: p.src, Line: nameLine, Field: "name",
				Msg: fmt.Sprintf("%q is also the name of the account at line %d: the pool's name must differ from every account's", a.Name, item.Line)}
		}
		pool.Accounts = append(pool.Accounts, a)
	}
	slices.SortStableFunc(pool.Accounts, func(a, b Account) int { return cmp.Compare(a.Tier, b.Tier) })
	return pool, nil
}

// yamlError turns a yaml syntax error into one line with its line number.
func (p *parser) yamlError(err error) *Error {
	msg := oneLine(err.Error())
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return p.errorf(line, "is not valid YAML: %s", m[2])
	}
	return p.errorf(0, "is not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// fields maps each field of the mapping m to its value, refusing unknown
// and repeated fields.
func (p *parser) fields(m *yaml.Node, known []string, acct string, index int) (map[string]*yaml.Node, error) {
	out := make(map[string]*yaml.Node)
	lines := make(map[string]int)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, &Error{Source: p.src, Line: k.Line, Account: acct, Index: index, Msg: "has a field name that is not a string"}
		}
		name := k.Value
		if !slices.Contains(known, name) {
			hint := ""
			if strings.Contains(strings.ToLower(name), "key") && index > 0 {
				hint = "; the key is read from the variable api_key_env names, never from the file"
			}
			return nil, &Error{Source: p.src, Line: k.Line, Account: acct, Index: index,
				Msg: fmt.Sprintf("has unknown field %s (known: %s)%s", quote(name), strings.Join(known, ", "), hint)}
		}
		if first, dup := lines[name]; dup {
			return nil, &Error{Source: p.src, Line: k.Line, Account: acct, Index: index, Field: name,
				Msg: fmt.Sprintf("is set twice (first at line %d)", first)}
		}
		lines[name] = k.Line
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue // "tier:" with no value: as if absent
		}
		out[name] = v
	}
	return out, nil
}

func (p *parser) account(m *yaml.Node, index int) (Account, error) {
	a := Account{Tier: TierDefault, Weight: WeightDefault, API: APIOpenAI}
	if m.Kind != yaml.MappingNode {
		return a, &Error{Source: p.src, Line: m.Line, Index: index, Msg: "must be a mapping of fields, got " + kindName(m)}
	}
	f, err := p.fields(m, accountFields, peekName(m), index)
	if err != nil {
		return a, err
	}
	fail := func(line int, field, format string, args ...any) (Account, error) {
		return a, &Error{Source: p.src, Line: line, Account: a.Name, Index: index, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	lineOf := func(field string) int {
		if v := f[field]; v != nil {
			return v.Line
		}
		return m.Line
	}

	// name first: the other errors name the account.
	v := f["name"]
	if v == nil {
		return fail(m.Line, "name", "is required")
	}
	name, err := p.str(v, "", index, "name")
	if err != nil {
		return a, err
	}
	if keys.ValidateAccount(name) != nil {
		return fail(v.Line, "name", "must be 1-64 characters of A-Z a-z 0-9 _ . -, got %s", quote(name))
	}
	a.Name = name

	str := func(field string) (string, error) {
		if f[field] == nil {
			return "", nil
		}
		return p.str(f[field], a.Name, index, field)
	}
	integer := func(field string, lo, hi int64, dst *int64) error {
		if f[field] == nil {
			return nil
		}
		n, err := p.integer(f[field], a.Name, index, field, lo, hi)
		if err == nil {
			*dst = n
		}
		return err
	}

	if a.BaseURL, err = str("base_url"); err != nil {
		return a, err
	}
	if a.APIKeyEnv, err = str("api_key_env"); err != nil {
		return a, err
	}
	if a.API, err = str("api"); err != nil {
		return a, err
	}
	if a.APIVersion, err = str("api_version"); err != nil {
		return a, err
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
		if err := integer(x.field, x.lo, x.hi, x.dst); err != nil {
			return a, err
		}
	}
	a.Tier, a.Weight = int(tier), int(weight)
	if f["models"] != nil {
		if a.Models, err = p.models(f["models"], a.Name, index); err != nil {
			return a, err
		}
	}
	if f["deployments"] != nil {
		if a.Deployments, err = p.deployments(f["deployments"], a.Name, index); err != nil {
			return a, err
		}
	}

	// base_url: an absolute http(s) URL. A URL with credentials in it is
	// never echoed.
	if a.BaseURL == "" {
		return fail(lineOf("base_url"), "base_url", "is required, e.g. https://api.openai.com/v1")
	}
	u, perr := url.Parse(a.BaseURL)
	switch {
	case perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		shown := " got " + quote(a.BaseURL)
		if strings.Contains(a.BaseURL, "@") {
			shown = " (value not shown: it may hold a credential)"
		}
		return fail(lineOf("base_url"), "base_url", "must be an absolute http or https URL like https://api.openai.com/v1,%s", shown)
	case u.User != nil:
		return fail(lineOf("base_url"), "base_url", "must not hold credentials (value not shown): the key is read from api_key_env")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return fail(lineOf("base_url"), "base_url", "must not have a query or fragment, got %s", quote(a.BaseURL))
	}

	// api_key_env: a variable name, set. Its value is never echoed, and
	// neither is a name that looks like a key pasted in its place.
	switch {
	case a.APIKeyEnv == "":
		return fail(lineOf("api_key_env"), "api_key_env", "is required: the name of the environment variable that holds the key")
	case !envNameRE.MatchString(a.APIKeyEnv) || looksLikeKey(a.APIKeyEnv):
		return fail(lineOf("api_key_env"), "api_key_env",
			"must be the name of an environment variable ([A-Za-z_][A-Za-z0-9_]*), not the key itself (value not shown)")
	}
	a.APIKey = p.getenv(a.APIKeyEnv)
	if a.APIKey == "" {
		return fail(lineOf("api_key_env"), "api_key_env", "names %s, which is not set or is empty", a.APIKeyEnv)
	}

	switch a.API {
	case "":
		a.API = APIOpenAI
	case APIOpenAI, APIAzure:
	default:
		return fail(lineOf("api"), "api", "must be %q or %q, got %s", APIOpenAI, APIAzure, quote(a.API))
	}
	if a.API == APIAzure {
		if a.APIVersion == "" {
			return fail(lineOf("api_version"), "api_version", "is required with api azure, e.g. 2024-10-21")
		}
		if strings.ContainsAny(a.APIVersion, " \t/?&#") {
			return fail(lineOf("api_version"), "api_version", "must be an Azure API version like 2024-10-21, got %s", quote(a.APIVersion))
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return fail(lineOf("base_url"), "base_url", "must be https with api azure (http only to localhost or a loopback IP), got %s", quote(a.BaseURL))
		}
		if path := strings.TrimSuffix(u.Path, "/"); strings.HasSuffix(path, "/openai") || strings.Contains(path, "/openai/") {
			return fail(lineOf("base_url"), "base_url",
				"must be the Azure resource endpoint without /openai (like https://NAME.openai.azure.com): the client adds /openai/deployments/..., got %s", quote(a.BaseURL))
		}
	} else {
		if f["api_version"] != nil {
			return fail(lineOf("api_version"), "api_version", "is only for api azure")
		}
		if f["deployments"] != nil {
			return fail(lineOf("deployments"), "deployments", "is only for api azure")
		}
	}
	if a.Models != nil {
		for model := range a.Deployments {
			if !slices.Contains(a.Models, model) {
				return fail(lineOf("deployments"), "deployments", "maps %s, which is not in models", quote(model))
			}
		}
	}
	return a, nil
}

// str is a scalar's text. YAML's types do not matter here: api_version
// 2024-10-21 is a timestamp to YAML and a string to promptq.
func (p *parser) str(v *yaml.Node, acct string, index int, field string) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", &Error{Source: p.src, Line: v.Line, Account: acct, Index: index, Field: field, Msg: "must be a string, got " + kindName(v)}
	}
	return v.Value, nil
}

// integer is a whole number in [lo, hi]. 1e6 is accepted (YAML reads it as
// a float), 1.5 is not.
func (p *parser) integer(v *yaml.Node, acct string, index int, field string, lo, hi int64) (int64, error) {
	bad := &Error{Source: p.src, Line: v.Line, Account: acct, Index: index, Field: field,
		Msg: fmt.Sprintf("must be between %d and %d, got %s", lo, hi, quote(v.Value))}
	if v.Kind != yaml.ScalarNode {
		bad.Msg = fmt.Sprintf("must be a whole number between %d and %d, got %s", lo, hi, kindName(v))
		return 0, bad
	}
	var n int64
	switch v.Tag {
	case "!!int":
		if err := v.Decode(&n); err != nil {
			return 0, bad
		}
	case "!!float":
		var x float64
		if err := v.Decode(&x); err != nil || x != math.Trunc(x) || x < float64(lo) || x > float64(hi) {
			return 0, bad
		}
		n = int64(x)
	default:
		bad.Msg = fmt.Sprintf("must be a whole number between %d and %d, got %s", lo, hi, quote(v.Value))
		return 0, bad
	}
	if n < lo || n > hi {
		bad.Msg = fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n)
		return 0, bad
	}
	return n, nil
}

func (p *parser) models(v *yaml.Node, acct string, index int) ([]string, error) {
	fail := func(line int, format string, args ...any) ([]string, error) {
		return nil, &Error{Source: p.src, Line: line, Account: acct, Index: index, Field: "models", Msg: fmt.Sprintf(format, args...)}
	}
	if v.Kind != yaml.SequenceNode {
		return fail(v.Line, "must be a list of model names, got %s", kindName(v))
	}
	if len(v.Content) == 0 {
		return fail(v.Line, "must list at least one model (leave models out for every model)")
	}
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		item = deref(item)
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || strings.TrimSpace(item.Value) == "" {
			return fail(item.Line, "must hold non-empty model names, got %s", kindName(item))
		}
		if item.Value != strings.TrimSpace(item.Value) {
			return fail(item.Line, "has a model name with spaces around it: %s", quote(item.Value))
		}
		if slices.Contains(out, item.Value) {
			return fail(item.Line, "lists %s twice", quote(item.Value))
		}
		out = append(out, item.Value)
	}
	return out, nil
}

func (p *parser) deployments(v *yaml.Node, acct string, index int) (map[string]string, error) {
	fail := func(line int, format string, args ...any) (map[string]string, error) {
		return nil, &Error{Source: p.src, Line: line, Account: acct, Index: index, Field: "deployments", Msg: fmt.Sprintf(format, args...)}
	}
	if v.Kind != yaml.MappingNode {
		return fail(v.Line, "must map model names to deployment names, got %s", kindName(v))
	}
	out := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, d := deref(v.Content[i]), deref(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || strings.TrimSpace(k.Value) == "" || k.Value != strings.TrimSpace(k.Value) {
			return fail(k.Line, "must map non-empty model names, got %s", kindName(k))
		}
		if _, dup := out[k.Value]; dup {
			return fail(k.Line, "maps %s twice", quote(k.Value))
		}
		if d.Kind != yaml.ScalarNode || !deploymentRE.MatchString(d.Value) {
			return fail(d.Line, "of %s must be 1-64 characters of A-Z a-z 0-9 _ . -, got %s", quote(k.Value), kindName(d))
		}
		out[k.Value] = d.Value
	}
	return out, nil
}

// peekName is the account's name if it has a valid one, so that errors
// about its other fields can name it.
func peekName(m *yaml.Node) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Value == "name" && v.Kind == yaml.ScalarNode && keys.ValidateAccount(v.Value) == nil {
			return v.Value
		}
	}
	return ""
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// kindName describes a node for an error: a scalar by its (shortened)
// value, anything else by its kind.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an alias"
}

// quote quotes s for an error, cut to 40 characters so that a long value
// pasted in the wrong field is not copied whole into logs.
func quote(s string) string {
	if r := []rune(s); len(r) > 40 {
		return strconv.Quote(string(r[:37]) + "...")
	}
	return strconv.Quote(s)
}

// isLoopback reports whether host is localhost or a loopback IP: the only
// hosts openai-go's azure package sends a key to over plain http.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
