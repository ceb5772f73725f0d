package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The binary under test is built once, by TestMain, with the exact `go build`
// command found in the Dockerfile; every check reads its --help output, so
// the manifests are compared with what the code really accepts.
var (
	binPath  string // built promptq binary
	buildErr error  // why it could not be built
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "promptq-deploy-lint")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "promptq")
	buildErr = buildLikeDockerfile(binPath)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// ---- the binary's own description of itself ----

// cmdSpec is what `promptq <cmd> --help` documents.
type cmdSpec struct {
	flags    map[string]bool   // flag name -> takes a value
	envs     map[string]bool   // every env variable the command reads
	defaults map[string]string // env variable -> default shown in --help
}

// spec is the whole CLI: commands and, per command, flags and env variables.
type spec struct {
	cmds   map[string]*cmdSpec
	allEnv map[string]bool
}

var (
	commandLine = regexp.MustCompile(`^  ([a-z][a-z0-9-]*)\s{2,}\S`)
	flagLine    = regexp.MustCompile(`^  --([a-z0-9-]+)( [A-Z]+)?$`)
	envTag      = regexp.MustCompile(`\[env ([A-Z][A-Z0-9_]*)\](?: \(default (.*)\))?$`)
	envOnlyLine = regexp.MustCompile(`^  ([A-Z][A-Z0-9_]*)$`)
)

func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building promptq with the Dockerfile's go build command: %v", buildErr)
	}
	cmd := exec.Command(binPath, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no REDIS_URL etc. leaking into defaults
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promptq %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	s := &spec{cmds: map[string]*cmdSpec{}, allEnv: map[string]bool{}}
	inCommands := false
	for _, line := range strings.Split(helpOf(t, "--help"), "\n") {
		if strings.HasPrefix(line, "Commands:") {
			inCommands = true
			continue
		}
		if m := commandLine.FindStringSubmatch(line); inCommands && m != nil {
			s.cmds[m[1]] = nil
		}
	}
	if len(s.cmds) == 0 {
		t.Fatal("promptq --help lists no commands")
	}
	for name := range s.cmds {
		c := &cmdSpec{flags: map[string]bool{}, envs: map[string]bool{}, defaults: map[string]string{}}
		lines := strings.Split(helpOf(t, name, "--help"), "\n")
		envOnly := false
		for i, line := range lines {
			switch {
			case strings.HasPrefix(line, "Environment only"):
				envOnly = true
			case envOnly && envOnlyLine.MatchString(line):
				c.envs[envOnlyLine.FindStringSubmatch(line)[1]] = true
			case flagLine.MatchString(line):
				m := flagLine.FindStringSubmatch(line)
				c.flags[m[1]] = m[2] != ""
				if i+1 < len(lines) {
					if e := envTag.FindStringSubmatch(strings.TrimSpace(lines[i+1])); e != nil {
						c.envs[e[1]] = true
						c.defaults[e[1]] = e[2]
					}
				}
			}
		}
		if len(c.flags) == 0 {
			t.Fatalf("promptq %s --help lists no flags", name)
		}
		for e := range c.envs {
			s.allEnv[e] = true
		}
		s.cmds[name] = c
	}
	return s
}

// checkInvocation reports what is wrong with `promptq args...`.
func (s *spec) checkInvocation(args []string) []string {
	if len(args) == 0 {
		return []string{"no promptq command given"}
	}
	c, ok := s.cmds[args[0]]
	if !ok {
		return []string{fmt.Sprintf("%q is not a promptq command (have %v)", args[0], sortedKeys(s.cmds))}
	}
	var probs []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			probs = append(probs, fmt.Sprintf("promptq %s: unexpected argument %q", args[0], a))
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := c.flags[name]
		switch {
		case !ok:
			probs = append(probs, fmt.Sprintf("promptq %s has no flag --%s", args[0], name))
		case takesValue && !hasValue:
			if i+1 >= len(args) {
				probs = append(probs, fmt.Sprintf("promptq %s: --%s needs a value", args[0], name))
			}
			i++
		}
	}
	return probs
}

// ---- reading the deployment files ----

type yamlFile struct {
	path string
	docs []any
}

func loadYAML(t *testing.T) []yamlFile {
	t.Helper()
	var files []yamlFile
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f := yamlFile{path: p}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %v", p, err)
			}
			if doc != nil {
				f.docs = append(f.docs, doc)
			}
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d YAML files under deploy/, want the compose file and the k8s manifests", len(files))
	}
	return files
}

// m and l walk decoded YAML without a type switch at every step.
func m(v any) map[string]any { x, _ := v.(map[string]any); return x }
func l(v any) []any          { x, _ := v.([]any); return x }
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}
func strs(v any) []string {
	var out []string
	for _, x := range l(v) {
		out = append(out, str(x))
	}
	return out
}

// isPromptq reports whether an image is the promptq image (any registry, any tag).
func isPromptq(image string) bool {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return path(name) == "promptq"
}

func path(name string) string { return name[strings.LastIndex(name, "/")+1:] }

// pinned reports whether an image names a fixed tag or digest (not latest).
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || i < strings.LastIndex(image, "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "" && tag != "latest" && !strings.Contains(tag, "$")
}

// interpolation matches compose's ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?message} and ${NAME?message}.
var interpolation = regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}`)

// resolve replaces compose interpolations by their defaults ("" without one,
// and for a required variable, whose value is unknown here).
func resolve(v string) string {
	return interpolation.ReplaceAllStringFunc(v, func(s string) string {
		if mm := interpolation.FindStringSubmatch(s); mm[2] == "-" {
			return mm[3]
		}
		return ""
	})
}

// requiredInterpolation matches ${NAME:?message}, which compose refuses to
// run with when NAME is unset or empty.
var requiredInterpolation = regexp.MustCompile(`^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$`)

// serveTokenProblem checks what `promptq serve` itself enforces at start-up:
// on an address that is not loopback it needs PROMPTQ_ADMIN_TOKEN, so the
// deploy file must make the token required rather than optionally empty.
// args is the serve invocation; env maps variables to their raw values;
// tokenRequired says whether the token's source cannot be empty.
func serveTokenProblem(args []string, env map[string]string, tokenRequired bool) string {
	if firstOr(args) != "serve" || tokenRequired {
		return ""
	}
	addr := resolve(env["PROMPTQ_SERVE_ADDR"])
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--addr="); ok {
			addr = v
		} else if a == "--addr" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	if addr == "" || loopback(addr) {
		return ""
	}
	return fmt.Sprintf("serve listens on %s without a required PROMPTQ_ADMIN_TOKEN (serve refuses to start; make the token required)", addr)
}

// loopback reports whether host:port names only loopback, as serve decides.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ---- the checks ----

// TestDeployFilesUseRealCommandsFlagsAndEnv is the main lint: every promptq
// invocation, flag and environment variable in the compose file and the k8s
// manifests is one the binary documents, and every image is pinned.
func TestDeployFilesUseRealCommandsFlagsAndEnv(t *testing.T) {
	s := loadSpec(t)
	files := loadYAML(t)
	configMaps := map[string]map[string]any{} // name -> data, across k8s/
	for _, f := range files {
		for _, doc := range f.docs {
			if d := m(doc); str(d["kind"]) == "ConfigMap" {
				configMaps[str(m(d["metadata"])["name"])] = m(d["data"])
			}
		}
	}
	sawCompose, sawWorkload := false, false
	for _, f := range files {
		t.Run(f.path, func(t *testing.T) {
			for _, doc := range f.docs {
				d := m(doc)
				if services := m(d["services"]); services != nil {
					sawCompose = true
					for _, p := range lintCompose(s, services) {
						t.Error(p)
					}
				}
				if spec := podSpec(d); spec != nil {
					sawWorkload = true
					for _, p := range lintPod(s, str(m(d["metadata"])["name"]), spec, configMaps) {
						t.Error(p)
					}
				}
			}
		})
	}
	if !sawCompose || !sawWorkload {
		t.Fatalf("saw compose services: %v, saw k8s workloads: %v; want both", sawCompose, sawWorkload)
	}
}

func lintCompose(s *spec, services map[string]any) []string {
	var probs []string
	for name, v := range services {
		svc := m(v)
		img := str(svc["image"])
		if !pinned(img) {
			probs = append(probs, fmt.Sprintf("service %s: image %q is not pinned to a tag", name, img))
		}
		if !isPromptq(img) {
			continue
		}
		args := strs(svc["command"])
		if _, ok := svc["command"].(string); ok {
			args = strings.Fields(str(svc["command"]))
		}
		for _, p := range s.checkInvocation(args) {
			probs = append(probs, fmt.Sprintf("service %s: %s", name, p))
		}
		env := composeEnv(svc["environment"])
		raw := rawComposeEnv(svc["environment"])
		tok := raw["PROMPTQ_ADMIN_TOKEN"]
		if p := serveTokenProblem(args, raw, requiredInterpolation.MatchString(tok) || (tok != "" && resolve(tok) != "")); p != "" {
			probs = append(probs, fmt.Sprintf("service %s: %s", name, p))
		}
		if c := s.cmds[firstOr(args)]; c != nil {
			for k := range env {
				if !c.envs[k] {
					probs = append(probs, fmt.Sprintf("service %s: promptq %s does not read %s", name, args[0], k))
				}
			}
		}
		if hc := strs(m(svc["healthcheck"])["test"]); len(hc) > 1 && hc[0] == "CMD" && strings.HasSuffix(hc[1], "promptq") {
			for _, p := range s.checkInvocation(hc[2:]) {
				probs = append(probs, fmt.Sprintf("service %s healthcheck: %s", name, p))
			}
		}
		if firstOr(args) == "worker" {
			grace, err := time.ParseDuration(str(svc["stop_grace_period"]))
			if err != nil {
				probs = append(probs, fmt.Sprintf("service %s: stop_grace_period: %v", name, err))
				continue
			}
			probs = append(probs, checkShutdown("service "+name, s.cmds["worker"], env, grace)...)
		}
	}
	return probs
}

func composeEnv(v any) map[string]string {
	env := rawComposeEnv(v)
	for k, x := range env {
		env[k] = resolve(x)
	}
	return env
}

// rawComposeEnv is a service's environment before interpolation.
func rawComposeEnv(v any) map[string]string {
	env := map[string]string{}
	for k, x := range m(v) {
		env[k] = str(x)
	}
	for _, x := range strs(v) {
		k, val, _ := strings.Cut(x, "=")
		env[k] = val
	}
	return env
}

// podSpec returns the pod spec of a workload object, or nil.
func podSpec(d map[string]any) map[string]any {
	switch str(d["kind"]) {
	case "Pod":
		return m(d["spec"])
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return m(m(m(d["spec"])["template"])["spec"])
	case "CronJob":
		return m(m(m(m(m(d["spec"])["jobTemplate"])["spec"])["template"])["spec"])
	}
	return nil
}

func lintPod(s *spec, workload string, pod map[string]any, configMaps map[string]map[string]any) []string {
	var probs []string
	containers := append(l(pod["containers"]), l(pod["initContainers"])...)
	for _, cv := range containers {
		c := m(cv)
		where := fmt.Sprintf("%s/%s", workload, str(c["name"]))
		img := str(c["image"])
		if !pinned(img) {
			probs = append(probs, fmt.Sprintf("%s: image %q is not pinned to a tag", where, img))
		}
		if !isPromptq(img) {
			continue
		}
		args := append(strs(c["command"]), strs(c["args"])...)
		if len(args) > 0 && strings.HasSuffix(args[0], "promptq") {
			args = args[1:] // command: ["/promptq"] replaces the ENTRYPOINT with itself
		}
		for _, p := range s.checkInvocation(args) {
			probs = append(probs, fmt.Sprintf("%s: %s", where, p))
		}
		env := map[string]string{}
		tokenRequired := false
		for _, ev := range l(c["env"]) {
			name := str(m(ev)["name"])
			env[name] = str(m(ev)["value"])
			if name == "PROMPTQ_ADMIN_TOKEN" {
				ref := m(m(m(ev)["valueFrom"])["secretKeyRef"])
				tokenRequired = env[name] != "" || (ref != nil && ref["optional"] != true)
			}
		}
		for _, ef := range l(c["envFrom"]) {
			ref := m(m(ef)["configMapRef"])
			if ref == nil {
				probs = append(probs, fmt.Sprintf("%s: envFrom without a configMapRef (its keys cannot be checked)", where))
				continue
			}
			data, ok := configMaps[str(ref["name"])]
			if !ok {
				probs = append(probs, fmt.Sprintf("%s: envFrom ConfigMap %q is not defined under deploy/", where, str(ref["name"])))
			}
			for k, v := range data {
				if _, set := env[k]; !set { // env beats envFrom
					env[k] = str(v)
				}
			}
		}
		if p := serveTokenProblem(args, env, tokenRequired); p != "" {
			probs = append(probs, fmt.Sprintf("%s: %s", where, p))
		}
		cs := s.cmds[firstOr(args)]
		if cs != nil {
			for k := range env {
				if !cs.envs[k] {
					probs = append(probs, fmt.Sprintf("%s: promptq %s does not read %s", where, args[0], k))
				}
			}
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
			cmd := strs(m(m(c[probe])["exec"])["command"])
			if len(cmd) > 0 && strings.HasSuffix(cmd[0], "promptq") {
				for _, p := range s.checkInvocation(cmd[1:]) {
					probs = append(probs, fmt.Sprintf("%s %s: %s", where, probe, p))
				}
			}
		}
		if firstOr(args) == "worker" {
			secs, ok := pod["terminationGracePeriodSeconds"].(int)
			if !ok {
				probs = append(probs, fmt.Sprintf("%s: terminationGracePeriodSeconds is not set (default 30s is the worker's SHUTDOWN_TIMEOUT default)", where))
				continue
			}
			probs = append(probs, checkShutdown(where, cs, env, time.Duration(secs)*time.Second)...)
		}
	}
	return probs
}

// checkShutdown checks MAX_INLINE_WAIT + REQUEST_TIMEOUT <= SHUTDOWN_TIMEOUT < grace:
// the longest attempt fits in the drain time, and the drain ends before the
// container is killed. Values missing from env take the --help default.
func checkShutdown(where string, worker *cmdSpec, env map[string]string, grace time.Duration) []string {
	get := func(name string) (time.Duration, error) {
		v := env[name]
		if v == "" {
			v = worker.defaults[name]
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%s: %s=%q: %v", where, name, v, err)
		}
		return d, nil
	}
	var ds [3]time.Duration
	for i, name := range []string{"MAX_INLINE_WAIT", "REQUEST_TIMEOUT", "SHUTDOWN_TIMEOUT"} {
		d, err := get(name)
		if err != nil {
			return []string{err.Error()}
		}
		ds[i] = d
	}
	var probs []string
	if ds[0]+ds[1] > ds[2] {
		probs = append(probs, fmt.Sprintf("%s: MAX_INLINE_WAIT %v + REQUEST_TIMEOUT %v exceeds SHUTDOWN_TIMEOUT %v: the longest attempt cannot finish during shutdown", where, ds[0], ds[1], ds[2]))
	}
	if grace <= ds[2] {
		probs = append(probs, fmt.Sprintf("%s: grace period %v is not longer than SHUTDOWN_TIMEOUT %v: the worker is killed mid-drain", where, grace, ds[2]))
	}
	return probs
}

func firstOr(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// TestComposeInterpolationsAreInEnvExample: every ${NAME} the compose file
// reads from deploy/.env is documented in .env.example.
func TestComposeInterpolationsAreInEnvExample(t *testing.T) {
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	documented := envExample(t)
	for _, mm := range interpolation.FindAllStringSubmatch(string(data), -1) {
		if _, ok := documented[mm[1]]; !ok {
			t.Errorf("docker-compose.yml reads ${%s}, which ../.env.example does not document", mm[1])
		}
	}
}

// envExample parses ../.env.example: NAME -> the comment line above it.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	fh, err := os.Open("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	out := map[string]string{}
	prev := ""
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			if _, dup := out[name]; dup {
				t.Errorf(".env.example: %s appears twice", name)
			}
			out[name] = prev
		}
		prev = line
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEnvExampleMatchesHelp: .env.example names every env variable of every
// command's --help, each with a comment line, and anything else it names is
// marked as not read by the binary (planned, or for tests only).
func TestEnvExampleMatchesHelp(t *testing.T) {
	s := loadSpec(t)
	doc := envExample(t)
	for _, name := range sortedKeys(s.allEnv) {
		if _, ok := doc[name]; !ok {
			t.Errorf(".env.example does not list %s (from promptq --help)", name)
		}
	}
	for name, comment := range doc {
		if !strings.HasPrefix(comment, "#") {
			t.Errorf(".env.example: %s has no comment line above it", name)
		}
		if !s.allEnv[name] && !strings.Contains(comment, "planned") && !strings.Contains(comment, "not read by the binary") {
			t.Errorf(".env.example: %s is not read by promptq; mark its comment \"planned\" or \"not read by the binary\"", name)
		}
	}
}

// TestKustomization: every listed resource exists, and every HPA targets a
// Deployment defined here.
func TestKustomization(t *testing.T) {
	data, err := os.ReadFile("k8s/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Resources) == 0 {
		t.Fatal("kustomization.yaml lists no resources")
	}
	deployments := map[string]bool{}
	var targets []string
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
			t.Errorf("kustomization resource %s: %v", r, err)
		}
	}
	for _, f := range loadYAML(t) {
		for _, doc := range f.docs {
			d := m(doc)
			switch str(d["kind"]) {
			case "Deployment":
				deployments[str(m(d["metadata"])["name"])] = true
			case "HorizontalPodAutoscaler":
				targets = append(targets, str(m(m(d["spec"])["scaleTargetRef"])["name"]))
			}
		}
	}
	if len(targets) == 0 {
		t.Error("no HorizontalPodAutoscaler under deploy/k8s")
	}
	for _, name := range targets {
		if !deployments[name] {
			t.Errorf("HPA targets Deployment %q, which is not defined under deploy/", name)
		}
	}
}

// TestKustomizeBuilds renders the manifests with kubectl's built-in kustomize
// when kubectl is installed (it needs no cluster); skipped otherwise.
func TestKustomizeBuilds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", "k8s").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize k8s: %v\n%s", err, out)
	}
	for _, kind := range []string{"Namespace", "ConfigMap", "StatefulSet", "Deployment", "Service", "HorizontalPodAutoscaler"} {
		if !bytes.Contains(out, []byte("\nkind: "+kind+"\n")) {
			t.Errorf("kustomize output has no %s", kind)
		}
	}
}

// ---- the Dockerfile ----

var (
	fromLine = regexp.MustCompile(`(?im)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$`)
	userLine = regexp.MustCompile(`(?im)^USER\s+(\S+)\s*$`)
	argLine  = regexp.MustCompile(`(?im)^ARG\s+([A-Z_]+)=(\S+)\s*$`)
	goDirect = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)
)

func readDockerfile() (string, error) {
	b, err := os.ReadFile("Dockerfile")
	return string(b), err
}

// TestDockerfile checks the stages' shape: a golang builder matching go.mod's
// Go version, a distroless static (or scratch) final stage running as a
// non-root user, and ENTRYPOINT ["/promptq"].
func TestDockerfile(t *testing.T) {
	df, err := readDockerfile()
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	for _, a := range argLine.FindAllStringSubmatch(df, -1) {
		args[a[1]] = a[2]
	}
	froms := fromLine.FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found %d FROM lines", len(froms))
	}
	builder := os.Expand(froms[0][1], func(k string) string { return args[k] })
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := "golang:" + goDirect.FindStringSubmatch(string(gomod))[1]
	if !strings.HasPrefix(builder, want) {
		t.Errorf("builder image %s does not match go.mod (want %s)", builder, want)
	}
	final := froms[len(froms)-1][1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %s: want gcr.io/distroless/static* or scratch", final)
	}
	if final != "scratch" && !pinned(final) {
		t.Errorf("final stage %s is not pinned to a tag", final)
	}
	finalStage := df[strings.LastIndex(df, froms[len(froms)-1][0]):]
	users := userLine.FindAllStringSubmatch(finalStage, -1)
	if len(users) == 0 {
		t.Error("final stage sets no USER: it would run as root")
	} else if u := users[len(users)-1][1]; u == "root" || u == "0" || strings.HasPrefix(u, "0:") {
		t.Errorf("final stage runs as %s", u)
	}
	if !strings.Contains(finalStage, `ENTRYPOINT ["/promptq"]`) {
		t.Error(`final stage lacks ENTRYPOINT ["/promptq"]`)
	}
}

// TestDockerfileBuildsStaticBinary: the Dockerfile's own go build command
// (run by TestMain on this machine, without docker) yields a statically
// linked ELF: no interpreter, no shared libraries.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if runtime.GOOS != "linux" {
		t.Skip("the binary is only an ELF file on linux")
	}
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary has a symbol table: -ldflags \"-s -w\" did not apply")
	}
}

// TestDockerfileBinaryIsTrimmed: the Dockerfile's go build leaves out what
// the image does not need: no DWARF sections (-ldflags "-w") and no file
// system path of the checkout (-trimpath).
func TestDockerfileBinaryIsTrimmed(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if runtime.GOOS != "linux" {
		t.Skip("the binary is only an ELF file on linux")
	}
	f, err := elf.Open(binPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_") {
			t.Errorf("binary has DWARF section %s: -ldflags \"-w\" did not apply", s.Name)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bin, []byte(root+string(filepath.Separator))) {
		t.Errorf("binary holds the checkout's path %s: -trimpath did not apply", root)
	}
}

// buildLikeDockerfile runs the `go build` of the Dockerfile's RUN line, with
// its environment assignments, from the repository root, writing to out.
func buildLikeDockerfile(out string) error {
	df, err := readDockerfile()
	if err != nil {
		return err
	}
	joined := strings.ReplaceAll(df, "\\\n", " ")
	var run string
	for _, line := range strings.Split(joined, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "RUN") && strings.Contains(line, "go build") {
			run = line
		}
	}
	if run == "" {
		return errors.New("no RUN line with go build in the Dockerfile")
	}
	words, err := shellWords(run[strings.Index(run, "RUN")+3:])
	if err != nil {
		return err
	}
	var env []string
	i := 0
	for ; i < len(words); i++ {
		w := words[i]
		switch {
		case strings.HasPrefix(w, "--mount="):
		case regexp.MustCompile(`^[A-Z_]+=`).MatchString(w):
			env = append(env, w)
		default:
			goto cmd
		}
	}
cmd:
	words = words[i:]
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return fmt.Errorf("RUN line does not start with go build after its env: %q", words)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		return errors.New("the Dockerfile's go build does not set CGO_ENABLED=0")
	}
	for _, want := range []string{"-trimpath", "-s -w"} {
		if !slices.Contains(words, want) {
			return fmt.Errorf("the Dockerfile's go build lacks %q", want)
		}
	}
	for j := range words {
		if words[j] == "-o" && j+1 < len(words) {
			words[j+1] = out
		}
	}
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), words[1:]...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(words, " "), err, b)
	}
	return nil
}

// shellWords splits a command line on spaces, honouring double and single quotes.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		quote rune
		inTok bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inTok = r, true
		case r == ' ' || r == '\t':
			if inTok {
				words = append(words, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unbalanced quote in " + strconv.Quote(s))
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words, nil
}

// ---- unit checks of the lint itself ----

// TestLintHelpers proves the lint would catch the mistakes it claims to.
func TestLintHelpers(t *testing.T) {
	s := &spec{cmds: map[string]*cmdSpec{
		"worker": {flags: map[string]bool{"concurrency": true, "quota-control": false}, envs: map[string]bool{"SHUTDOWN_TIMEOUT": true},
			defaults: map[string]string{"MAX_INLINE_WAIT": "2s", "REQUEST_TIMEOUT": "10m0s", "SHUTDOWN_TIMEOUT": "30s"}},
	}}
	invocations := []struct {
		args  []string
		nProb int
	}{
		{[]string{"worker"}, 0},
		{[]string{"worker", "--concurrency", "5", "--quota-control"}, 0},
		{[]string{"worker", "--concurrency=5"}, 0},
		{[]string{"wroker"}, 1},
		{[]string{"worker", "--concurency", "5"}, 2}, // unknown flag, then a stray argument
		{[]string{"worker", "--concurrency"}, 1},
		{nil, 1},
	}
	for _, tc := range invocations {
		if got := s.checkInvocation(tc.args); len(got) != tc.nProb {
			t.Errorf("checkInvocation(%q) = %q, want %d problems", tc.args, got, tc.nProb)
		}
	}
	images := []struct {
		image  string
		pinned bool
	}{
		{"redis:7.4", true}, {"redis", false}, {"redis:latest", false},
		{"localhost:5000/promptq", false}, {"localhost:5000/promptq:1.2", true},
		{"gcr.io/distroless/static-debian12:nonroot", true}, {"x@sha256:abc", true}, {"promptq:${TAG}", false},
	}
	for _, tc := range images {
		if got := pinned(tc.image); got != tc.pinned {
			t.Errorf("pinned(%q) = %v, want %v", tc.image, got, tc.pinned)
		}
	}
	if !isPromptq("registry.example.com/team/promptq:0.1.0") || isPromptq("redis:7.4") || isPromptq("promptq-other:1") {
		t.Error("isPromptq misclassifies images")
	}
	if got := resolve("${A:-2m}x${B}y${C:?set C}"); got != "2mxy" {
		t.Errorf("resolve = %q", got)
	}
	serve := []struct {
		args     []string
		env      map[string]string
		required bool
		problem  bool
	}{
		{[]string{"serve", "--addr", "0.0.0.0:8080"}, nil, false, true},
		{[]string{"serve", "--addr=0.0.0.0:8080"}, nil, false, true},
		{[]string{"serve"}, map[string]string{"PROMPTQ_SERVE_ADDR": ":8080"}, false, true},
		{[]string{"serve", "--addr", "0.0.0.0:8080"}, nil, true, false},
		{[]string{"serve"}, nil, false, false}, // default 127.0.0.1:8080
		{[]string{"serve", "--addr", "localhost:8080"}, nil, false, false},
		{[]string{"worker"}, nil, false, false},
	}
	for _, tc := range serve {
		if got := serveTokenProblem(tc.args, tc.env, tc.required); (got != "") != tc.problem {
			t.Errorf("serveTokenProblem(%q, %v, %v) = %q, want a problem: %v", tc.args, tc.env, tc.required, got, tc.problem)
		}
	}
	if !requiredInterpolation.MatchString("${T:?set T in .env}") || requiredInterpolation.MatchString("${T:-}") || requiredInterpolation.MatchString("${T?unset only}") {
		t.Error("requiredInterpolation misclassifies")
	}
	shutdown := []struct {
		env   map[string]string
		grace time.Duration
		nProb int
	}{
		{map[string]string{}, time.Minute, 1}, // defaults: 2s + 10m > 30s
		{map[string]string{"REQUEST_TIMEOUT": "20s"}, time.Minute, 0},
		{map[string]string{"REQUEST_TIMEOUT": "20s"}, 30 * time.Second, 1}, // grace == SHUTDOWN_TIMEOUT
		{map[string]string{"REQUEST_TIMEOUT": "5m", "SHUTDOWN_TIMEOUT": "1m"}, 30 * time.Second, 2},
		{map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, time.Minute, 1},
	}
	for _, tc := range shutdown {
		if got := checkShutdown("x", s.cmds["worker"], tc.env, tc.grace); len(got) != tc.nProb {
			t.Errorf("checkShutdown(%v, %v) = %q, want %d problems", tc.env, tc.grace, got, tc.nProb)
		}
	}
	words, err := shellWords(` CGO_ENABLED=0 go build -ldflags "-s -w" -o /out/x ./cmd/promptq`)
	if err != nil || !slices.Equal(words, []string{"CGO_ENABLED=0", "go", "build", "-ldflags", "-s -w", "-o", "/out/x", "./cmd/promptq"}) {
		t.Errorf("shellWords = %q, %v", words, err)
	}
}

func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
