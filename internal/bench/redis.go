package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// throwawayRedis is a redis-server started for one bench, without
// persistence, in a temporary directory.
type throwawayRedis struct {
	cmd *exec.Cmd
	dir string
	url string
}

// startRedis starts redis-server on a free loopback port and waits (up to
// 10s) until it answers PING.
func startRedis(ctx context.Context, bin string) (*throwawayRedis, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("bench: %s not found (install redis-server or pass --redis): %w", bin, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "promptq-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: start %s: %w", bin, err)
	}
	r := &throwawayRedis{cmd: cmd, dir: dir, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port)}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for rdb.Ping(wctx).Err() != nil {
		select {
		case <-wctx.Done():
			r.stop()
			return nil, fmt.Errorf("bench: redis-server on port %d did not answer PING within 10s", port)
		case <-tick.C:
		}
	}
	return r, nil
}

func (r *throwawayRedis) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	_ = os.RemoveAll(r.dir)
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// commandStats maps a Redis command name (lower case, e.g. "evalsha") to
// its call count, from INFO commandstats.
type commandStats map[string]int64

func readCommandStats(ctx context.Context, rdb *redis.Client) (commandStats, error) {
	txt, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("bench: INFO commandstats: %w", err)
	}
	return parseCommandStats(txt)
}

// parseCommandStats parses lines like
// "cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.3,...".
func parseCommandStats(txt string) (commandStats, error) {
	out := commandStats{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("bench: commandstats line %q: %w", line, err)
				}
				out[name] = n
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("bench: INFO commandstats returned no commands")
	}
	return out, nil
}

// sub returns the per-command increase from before to s, leaving out
// commands that did not grow.
func (s commandStats) sub(before commandStats) commandStats {
	out := commandStats{}
	for k, v := range s {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (s commandStats) total() int64 {
	var n int64
	for _, v := range s {
		n += v
	}
	return n
}
