package pool

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var deploymentRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)

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
