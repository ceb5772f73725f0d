package deploy

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
)

// TestHealthChecksAreCheap: no compose healthcheck or Kubernetes probe runs
// a promptq command other than `probe` (`promptq status` reads every queue:
// hundreds of Redis commands per check), and the worker's checks hit its own
// --ops-addr /healthz on the port WORKER_OPS_ADDR opens.
func TestHealthChecksAreCheap(t *testing.T) {
	configMaps := map[string]map[string]any{}
	files := loadYAML(t)
	for _, f := range files {
		for _, doc := range f.docs {
			if d := m(doc); str(d["kind"]) == "ConfigMap" {
				configMaps[str(m(d["metadata"])["name"])] = m(d["data"])
			}
		}
	}
	sawWorker := map[string]bool{}
	for _, f := range files {
		for _, doc := range f.docs {
			d := m(doc)
			for name, v := range m(d["services"]) {
				svc := m(v)
				hc := strs(m(svc["healthcheck"])["test"])
				if len(hc) > 1 && hc[0] == "CMD" && strings.HasSuffix(hc[1], "promptq") && firstOr(hc[2:]) != "probe" {
					t.Errorf("%s: service %s healthcheck runs `promptq %s`; use `promptq probe` against /healthz", f.path, name, strings.Join(hc[2:], " "))
				}
				if isPromptq(str(svc["image"])) && firstOr(strs(svc["command"])) == "worker" {
					sawWorker["compose"] = true
					port := opsPort(composeEnv(svc["environment"])["WORKER_OPS_ADDR"])
					if port == "" {
						t.Errorf("%s: worker service sets no WORKER_OPS_ADDR: it has no /healthz to check", f.path)
					}
					if u := probeURL(hc); u == nil || u.Path != "/healthz" || u.Port() != port {
						t.Errorf("%s: worker healthcheck %v is not `promptq probe --url http://127.0.0.1:%s/healthz`", f.path, hc, port)
					}
				}
			}
			pod := podSpec(d)
			if pod == nil {
				continue
			}
			workload := str(m(d["metadata"])["name"])
			for _, cv := range l(pod["containers"]) {
				c := m(cv)
				for _, probe := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
					cmd := strs(m(m(c[probe])["exec"])["command"])
					if len(cmd) > 0 && strings.HasSuffix(cmd[0], "promptq") && firstOr(cmd[1:]) != "probe" {
						t.Errorf("%s: %s %s runs `promptq %s`; use an httpGet of /healthz", f.path, workload, probe, strings.Join(cmd[1:], " "))
					}
				}
				if !isPromptq(str(c["image"])) || firstOr(strs(c["args"])) != "worker" {
					continue
				}
				sawWorker["k8s"] = true
				env := map[string]string{}
				for _, ef := range l(c["envFrom"]) {
					for k, v := range configMaps[str(m(m(ef)["configMapRef"])["name"])] {
						env[k] = str(v)
					}
				}
				for _, ev := range l(c["env"]) {
					env[str(m(ev)["name"])] = str(m(ev)["value"])
				}
				port := opsPort(env["WORKER_OPS_ADDR"])
				get := m(m(c["readinessProbe"])["httpGet"])
				if port == "" || get == nil || str(get["path"]) != "/healthz" || containerPort(c, str(get["port"])) != port {
					t.Errorf("%s: %s readinessProbe %v is not an httpGet of /healthz on WORKER_OPS_ADDR's port %q", f.path, workload, c["readinessProbe"], port)
				}
			}
		}
	}
	if !sawWorker["compose"] || !sawWorker["k8s"] {
		t.Fatalf("found the worker in %v; want compose and k8s", sawWorker)
	}
}

// opsPort is the port of a WORKER_OPS_ADDR value ("" when unset).
func opsPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// probeURL is the --url of a compose `promptq probe` healthcheck.
func probeURL(hc []string) *url.URL {
	for i, a := range hc {
		v, ok := strings.CutPrefix(a, "--url=")
		if !ok && a == "--url" && i+1 < len(hc) {
			v, ok = hc[i+1], true
		}
		if ok {
			u, err := url.Parse(v)
			if err == nil {
				return u
			}
		}
	}
	return nil
}

// containerPort resolves a probe's port (a number or a port name) to the
// container port number.
func containerPort(c map[string]any, port string) string {
	for _, pv := range l(c["ports"]) {
		p := m(pv)
		if str(p["name"]) == port || str(p["containerPort"]) == port {
			return str(p["containerPort"])
		}
	}
	return ""
}

// TestPodSecurityAndDisruption: every container (Redis included) runs
// without privilege escalation and with every capability dropped, every
// pod as non-root, and every workload that runs several replicas (or is
// scaled by an HPA) has a PodDisruptionBudget selecting its pods.
func TestPodSecurityAndDisruption(t *testing.T) {
	type workload struct {
		where    string
		labels   map[string]any
		replicas int
	}
	var workloads []workload
	var pdbs []map[string]any
	scaled := map[string]bool{}
	for _, f := range loadYAML(t) {
		for _, doc := range f.docs {
			d := m(doc)
			switch str(d["kind"]) {
			case "PodDisruptionBudget":
				pdbs = append(pdbs, m(m(m(d["spec"])["selector"])["matchLabels"]))
			case "HorizontalPodAutoscaler":
				scaled[str(m(m(d["spec"])["scaleTargetRef"])["name"])] = true
			}
			pod := podSpec(d)
			if pod == nil {
				continue
			}
			name := str(m(d["metadata"])["name"])
			where := f.path + ": " + name
			if m(pod["securityContext"])["runAsNonRoot"] != true {
				t.Errorf("%s: pod securityContext.runAsNonRoot is not true", where)
			}
			for _, cv := range append(l(pod["containers"]), l(pod["initContainers"])...) {
				c := m(cv)
				sc := m(c["securityContext"])
				if sc["allowPrivilegeEscalation"] != false {
					t.Errorf("%s/%s: securityContext.allowPrivilegeEscalation is not false", where, str(c["name"]))
				}
				if caps := strs(m(sc["capabilities"])["drop"]); len(caps) != 1 || caps[0] != "ALL" {
					t.Errorf("%s/%s: securityContext.capabilities.drop is %v, want [ALL]", where, str(c["name"]), caps)
				}
			}
			replicas, _ := m(d["spec"])["replicas"].(int)
			workloads = append(workloads, workload{where: where, labels: m(m(m(m(d["spec"])["template"])["metadata"])["labels"]), replicas: replicas})
			if scaled[name] {
				workloads[len(workloads)-1].replicas = max(replicas, 2)
			}
		}
	}
	covered := func(labels map[string]any) bool {
		for _, sel := range pdbs {
			ok := len(sel) > 0
			for k, v := range sel {
				ok = ok && fmt.Sprint(labels[k]) == fmt.Sprint(v)
			}
			if ok {
				return true
			}
		}
		return false
	}
	n := 0
	for _, w := range workloads {
		if w.replicas > 1 {
			n++
			if !covered(w.labels) {
				t.Errorf("%s: %d replicas and no PodDisruptionBudget selects its pods", w.where, w.replicas)
			}
		}
	}
	if n == 0 {
		t.Fatal("no workload with several replicas: the check saw nothing")
	}
}
