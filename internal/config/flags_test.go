package config

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestFlagEnvPrecedence(t *testing.T) {
	env := map[string]string{"X_NAME": "from-env", "X_N": "7", "X_D": "3s"}
	var (
		name string
		n    int
		d    time.Duration
	)
	f := New("t", "test", &bytes.Buffer{})
	f.SetGetenv(func(k string) string { return env[k] })
	f.String(&name, "name", "X_NAME", "def", "a name")
	f.Int(&n, "n", "X_N", 1, "a number")
	f.Duration(&d, "d", "X_D", time.Second, "a duration")
	if err := f.Parse([]string{"--n", "9"}); err != nil {
		t.Fatal(err)
	}
	if name != "from-env" || n != 9 || d != 3*time.Second {
		t.Fatalf("got name=%q n=%d d=%v; want env for name and d, flag for n", name, n, d)
	}
}

func TestFlagEnvInvalidNamesVariable(t *testing.T) {
	var n int
	f := New("t", "test", &bytes.Buffer{})
	f.SetGetenv(func(k string) string { return map[string]string{"X_N": "lots"}[k] })
	f.Int(&n, "n", "X_N", 1, "a number")
	err := f.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "X_N") {
		t.Fatalf("want error naming X_N, got %v", err)
	}
}

func TestUsageListsEnvAndRedactsDefaults(t *testing.T) {
	var out bytes.Buffer
	var s string
	f := New("t", "summary", &out)
	f.String(&s, "redis", "REDIS_URL", "redis://u:secret@h:6379/0", "redis")
	f.EnvOnly("OPENAI_API_KEY", "key")
	if err := f.Parse([]string{"--help"}); err != ErrHelp {
		t.Fatalf("want ErrHelp, got %v", err)
	}
	got := out.String()
	for _, want := range []string{"--redis", "[env REDIS_URL]", "OPENAI_API_KEY", "u:xxxxx@h"} {
		if !strings.Contains(got, want) {
			t.Errorf("usage lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "secret") {
		t.Errorf("usage shows a password:\n%s", got)
	}
}

func TestParseQueues(t *testing.T) {
	q, err := ParseQueues("critical=6, default=3,low")
	if err != nil || q["critical"] != 6 || q["default"] != 3 || q["low"] != 1 {
		t.Fatalf("got %v, %v", q, err)
	}
	for _, bad := range []string{"", "a=0", "a=x", "=3", ","} {
		if _, err := ParseQueues(bad); err == nil {
			t.Errorf("ParseQueues(%q): want error", bad)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:pw@h:1/0":    "redis://:xxxxx@h:1/0",
		"rediss://user:pw@h:1": "rediss://user:xxxxx@h:1",
		"redis://h:1/0":        "redis://h:1/0",
		"redis://token@h:1/0":  "redis://xxxxx@h:1/0",
		"not a url @ all":      "not a url @ all",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
