// Package config parses promptq's command-line flags, each with an
// environment variable as its equivalent (flag beats env beats default), and
// prints complete --help text.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrHelp is returned by Parse when --help was asked for (the usage is printed).
var ErrHelp = flag.ErrHelp

// Flags is a flag set whose flags may each have an environment variable.
type Flags struct {
	fs      *flag.FlagSet
	name    string
	summary string
	out     io.Writer
	env     map[string]string // flag name -> env var
	meta    map[string]string // flag name -> value placeholder
	order   []string
	envOnly []envDoc
	getenv  func(string) string
}

type envDoc struct{ name, usage string }

// New returns a flag set for the subcommand name, whose usage goes to out.
func New(name, summary string, out io.Writer) *Flags {
	f := &Flags{
		fs: flag.NewFlagSet(name, flag.ContinueOnError), name: name, summary: summary, out: out,
		env: map[string]string{}, meta: map[string]string{}, getenv: os.Getenv,
	}
	f.fs.SetOutput(io.Discard)
	return f
}

// SetGetenv replaces os.Getenv, for tests.
func (f *Flags) SetGetenv(fn func(string) string) { f.getenv = fn }

func (f *Flags) add(name, env, meta string) {
	f.order = append(f.order, name)
	if env != "" {
		f.env[name] = env
	}
	f.meta[name] = meta
}

// String defines a string flag.
func (f *Flags) String(p *string, name, env, def, usage string) {
	f.fs.StringVar(p, name, def, usage)
	f.add(name, env, "VALUE")
}

// Int defines an int flag.
func (f *Flags) Int(p *int, name, env string, def int, usage string) {
	f.fs.IntVar(p, name, def, usage)
	f.add(name, env, "N")
}

// Int64 defines an int64 flag.
func (f *Flags) Int64(p *int64, name, env string, def int64, usage string) {
	f.fs.Int64Var(p, name, def, usage)
	f.add(name, env, "N")
}

// Float defines a float flag.
func (f *Flags) Float(p *float64, name, env string, def float64, usage string) {
	f.fs.Float64Var(p, name, def, usage)
	f.add(name, env, "X")
}

// Duration defines a duration flag (Go syntax: 500ms, 2s, 1h30m).
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.fs.DurationVar(p, name, def, usage)
	f.add(name, env, "DURATION")
}

// Bool defines a boolean flag.
func (f *Flags) Bool(p *bool, name, env string, def bool, usage string) {
	f.fs.BoolVar(p, name, def, usage)
	f.add(name, env, "")
}

// EnvOnly documents a setting read only from the environment (a secret).
func (f *Flags) EnvOnly(name, usage string) { f.envOnly = append(f.envOnly, envDoc{name, usage}) }

// Set reports whether the flag was given on the command line or by its env.
func (f *Flags) Set(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// Label names a flag and its environment variable for messages:
// "--rpm / PROMPTQ_RPM" ("--rpm" for a flag without one).
func (f *Flags) Label(name string) string {
	if env := f.env[name]; env != "" {
		return "--" + name + " / " + env
	}
	return "--" + name
}

// Args returns the positional arguments left after parsing.
func (f *Flags) Args() []string { return f.fs.Args() }

// Parse parses args, then fills each flag not given from its env variable.
// Errors name the flag or the variable; ErrHelp means usage was printed.
func (f *Flags) Parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.Usage()
			return ErrHelp
		}
		return fmt.Errorf("%s: %v (see 'promptq %s --help')", f.name, err, f.name)
	}
	given := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	for _, name := range f.order {
		env := f.env[name]
		if given[name] || env == "" {
			continue
		}
		v, ok := lookup(f.getenv, env)
		if !ok {
			continue
		}
		if err := f.fs.Set(name, v); err != nil {
			return fmt.Errorf("%s: environment variable %s: invalid value %q for --%s", f.name, env, redact(name, v), name)
		}
	}
	return nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func redact(flagName, v string) string {
	if strings.Contains(flagName, "redis") {
		return RedactURL(v)
	}
	return v
}

// Usage prints the complete help: every flag with its env variable and default.
func (f *Flags) Usage() {
	w := f.out
	fmt.Fprintf(w, "Usage: promptq %s [flags]\n\n%s\n\nFlags (a flag beats its environment variable, which beats the default):\n", f.name, f.summary)
	for _, name := range f.order {
		fl := f.fs.Lookup(name)
		head := "  --" + name
		if m := f.meta[name]; m != "" {
			head += " " + m
		}
		fmt.Fprintln(w, head)
		line := "        " + fl.Usage
		if env := f.env[name]; env != "" {
			line += " [env " + env + "]"
		}
		if fl.DefValue != "" && fl.DefValue != "0" && fl.DefValue != "false" && fl.DefValue != "0s" {
			line += " (default " + RedactURL(fl.DefValue) + ")"
		}
		fmt.Fprintln(w, line)
	}
	if len(f.envOnly) > 0 {
		fmt.Fprintln(w, "\nEnvironment only (never a flag):")
		for _, e := range f.envOnly {
			fmt.Fprintf(w, "  %s\n        %s\n", e.name, e.usage)
		}
	}
}

// RedactURL hides the password of a URL such as redis://user:pw@host:6379/0.
func RedactURL(s string) string {
	at := strings.LastIndex(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return s[:scheme+3] + userinfo[:i] + ":xxxxx" + s[at:]
	}
	return s[:scheme+3] + "xxxxx" + s[at:]
}

// ParseQueues parses "critical=6,default=3,low=1" (a bare name has priority 1).
func ParseQueues(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, prio, hasPrio := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		p := 1
		if hasPrio {
			n, err := strconv.Atoi(strings.TrimSpace(prio))
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("queue %q: priority must be a whole number from 1 to 1000", name)
			}
			p = n
		}
		if name == "" {
			return nil, fmt.Errorf("queues %q: empty queue name", s)
		}
		out[name] = p
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("queues %q: name at least one queue", s)
	}
	return out, nil
}
