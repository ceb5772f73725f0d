package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/promptq/promptq/internal/config"
)

const probeURLDefault = "http://127.0.0.1:9090/healthz"

// runProbe is a health check for images without an HTTP client (the
// distroless image): one GET, exit 0 on a 2xx answer. Against a worker's
// --ops-addr /healthz or serve's /healthz it costs one Redis PING, where
// `promptq status` reads every queue.
func runProbe(ctx context.Context, args []string, _ io.Reader, stdout, _ io.Writer) error {
	var (
		target  string
		timeout time.Duration
	)
	f := config.New("probe", "GET a health endpoint and exit 0 on a 2xx answer, 1 otherwise: a container healthcheck\n"+
		"for the distroless image, which has no curl. Point it at the worker's --ops-addr /healthz or serve's /healthz.", stdout)
	f.String(&target, "url", "PROMPTQ_PROBE_URL", probeURLDefault, "the URL to GET (http:// only)")
	f.Duration(&timeout, "timeout", "PROMPTQ_PROBE_TIMEOUT", 3*time.Second, "give up after this long")
	if err := f.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(target)
	switch {
	case err != nil || u.Scheme != "http" || u.Host == "":
		return fmt.Errorf("--url / PROMPTQ_PROBE_URL must be an http:// URL, got %q", target)
	case timeout <= 0:
		return fmt.Errorf("--timeout / PROMPTQ_PROBE_TIMEOUT must be positive, got %v", timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s answered %s", target, resp.Status)
	}
	return nil
}
