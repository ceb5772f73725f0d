package quota

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// luaNames reads the names a script gives its KEYS or ARGV in its header
// tables (`name = KEYS[n]` or `name = tonumber(ARGV[n])`), by index.
func luaNames(t *testing.T, file, table string) []string {
	t.Helper()
	src, err := luaFiles.ReadFile("lua/" + file)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*(?:tonumber\()?` + table + `\[(\d+)\]`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[2])
		if n != len(names)+1 {
			t.Fatalf("%s: %s[%d] out of order", file, table, n)
		}
		names = append(names, m[1])
	}
	return names
}

// snake turns a Go field name into a Lua one: fairVT -> fair_vt,
// dayTTLMs -> day_ttl_ms.
func snake(s string) string {
	s = regexp.MustCompile(`([a-z])([A-Z])`).ReplaceAllString(s, "${1}_$2")
	s = regexp.MustCompile(`([A-Z])([A-Z][a-z])`).ReplaceAllString(s, "${1}_$2")
	return strings.ToLower(s)
}

// listedNames fills every field of the struct v points to with a value
// that tells it apart, calls list and returns the Go names of the fields in
// the order list gives them.
func listedNames[T any](t *testing.T, v *T, list func() []any) []string {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	byValue := map[any]string{}
	for i := range rv.NumField() {
		f := rv.Field(i)
		f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
		name := rv.Type().Field(i).Name
		var val any
		switch f.Kind() {
		case reflect.String, reflect.Interface:
			val = "v" + name
			f.Set(reflect.ValueOf(val))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(100 + i))
			val = f.Interface()
		case reflect.Bool:
			f.SetBool(true)
			val = boolArg(true)
		default:
			t.Fatalf("field %s: kind %v", name, f.Kind())
		}
		byValue[val] = name
	}
	var out []string
	for _, x := range list() {
		out = append(out, snake(byValue[x]))
	}
	return out
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// The Go builders list KEYS and ARGV in the order the scripts name them.
func TestScriptArgumentNames(t *testing.T) {
	for _, c := range []struct {
		file, table string
		got         func(t *testing.T) []string
	}{
		{"reserve.lua", "KEYS", func(t *testing.T) []string {
			var k reserveKeys
			return listedNames(t, &k, func() []any { return strs(k.list()) })
		}},
		{"reserve.lua", "ARGV", func(t *testing.T) []string {
			var a reserveArgv
			return listedNames(t, &a, func() []any { return a.list() })
		}},
		{"settle.lua", "KEYS", func(t *testing.T) []string {
			var k settleKeys
			return listedNames(t, &k, func() []any { return strs(k.list()) })
		}},
		{"settle.lua", "ARGV", func(t *testing.T) []string {
			var a settleArgv
			return listedNames(t, &a, func() []any { return a.list() })
		}},
	} {
		t.Run(c.file+"/"+c.table, func(t *testing.T) {
			want := luaNames(t, c.file, c.table)
			if got := c.got(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("Go lists\n%v\nthe script names\n%v", got, want)
			}
		})
	}
}
