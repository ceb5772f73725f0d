package pool

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/promptq/promptq/internal/keys"
)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

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

// parse reads the one YAML document: the pool's name, then its accounts.
func (p *parser) parse(data []byte) (*Pool, error) {
	root, err := p.root(data)
	if err != nil {
		return nil, err
	}
	top, err := p.fields(root, poolFields, "", 0)
	if err != nil {
		return nil, err
	}
	pool := &Pool{Name: NameDefault}
	nameLine := 0
	if v := top["name"]; v != nil {
		if pool.Name, err = p.poolName(v); err != nil {
			return nil, err
		}
		nameLine = v.Line
	}
	list := top["accounts"]
	if list == nil {
		return nil, &Error{Source: p.src, Line: root.Line, Field: "accounts", Msg: "is required: list at least one account"}
	}
	if pool.Accounts, err = p.accounts(list, pool.Name, nameLine); err != nil {
		return nil, err
	}
	slices.SortStableFunc(pool.Accounts, func(a, b Account) int { return cmp.Compare(a.Tier, b.Tier) })
	return pool, nil
}

// root is the mapping at the top of the file's only document.
func (p *parser) root(data []byte) (*yaml.Node, error) {
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
	return root, nil
}

// poolName is the pool's name field, checked like an account's name.
func (p *parser) poolName(v *yaml.Node) (string, error) {
	s, err := p.str(v, "", 0, "name")
	if err != nil {
		return "", err
	}
	if keys.ValidateAccount(s) != nil {
		return "", &Error{Source: p.src, Line: v.Line, Field: "name",
			Msg: fmt.Sprintf("must be 1-64 characters of A-Z a-z 0-9 _ . -, got %s", quote(s))}
	}
	return s, nil
}

// accounts reads the list of accounts, whose names are unique and differ
// from the pool's (poolName, set at nameLine or 0 for the default).
func (p *parser) accounts(list *yaml.Node, poolName string, nameLine int) ([]Account, error) {
	if list.Kind != yaml.SequenceNode {
		return nil, &Error{Source: p.src, Line: list.Line, Field: "accounts", Msg: "must be a list of accounts, got " + kindName(list)}
	}
	if len(list.Content) == 0 {
		return nil, &Error{Source: p.src, Line: list.Line, Field: "accounts", Msg: "must list at least one account"}
	}
	var out []Account
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
		if a.Name == poolName {
			if nameLine == 0 {
				return nil, &Error{Source: p.src, Line: item.Line, Account: a.Name, Index: i + 1, Field: "name",
					Msg: fmt.Sprintf("%q is the pool's default name: rename the account or give the pool another name", a.Name)}
			}
			return nil, &Error{Source: p.src, Line: nameLine, Field: "name",
				Msg: fmt.Sprintf("%q is also the name of the account at line %d: the pool's name must differ from every account's", a.Name, item.Line)}
		}
		out = append(out, a)
	}
	return out, nil
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
