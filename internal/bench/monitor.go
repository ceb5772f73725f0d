package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/keys"
)

// Owners a command sent to Redis is attributed to, by its first key.
const (
	OwnerPromptq = "promptq" // keys promptq:{acct}:...
	OwnerAsynq   = "asynq"   // keys asynq:...
	OwnerOther   = "other"   // no key (PING, HELLO, CLIENT, INFO, SUBSCRIBE ...) or another prefix
)

// monitor counts the commands clients send to Redis (not the ones Lua
// scripts run), by owner and by command, from a MONITOR connection. INFO
// commandstats cannot tell the two apart: it counts a script's redis.call
// commands as well as the EVALSHA that ran it.
type monitor struct {
	conn net.Conn
	done chan struct{}

	mu     sync.Mutex
	counts map[string]map[string]int64 // owner -> lower-case command -> count
	err    error
}

// startMonitor opens a MONITOR connection to the Redis of opt (plain TCP;
// TLS is not supported).
func startMonitor(ctx context.Context, opt *redis.Options) (*monitor, error) {
	if opt.TLSConfig != nil {
		return nil, errors.New("bench: MONITOR over TLS is not supported")
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", opt.Addr)
	if err != nil {
		return nil, fmt.Errorf("bench: monitor connection: %w", err)
	}
	rd := bufio.NewReaderSize(conn, 1<<16)
	send := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return "", err
		}
		return rd.ReadString('\n')
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if opt.Password != "" {
		args := []string{"AUTH", opt.Password}
		if opt.Username != "" {
			args = []string{"AUTH", opt.Username, opt.Password}
		}
		if line, err := send(args...); err != nil || !strings.HasPrefix(line, "+OK") {
			conn.Close()
			return nil, fmt.Errorf("bench: monitor AUTH failed: %v", cmpErr(err, line))
		}
	}
	if line, err := send("MONITOR"); err != nil || !strings.HasPrefix(line, "+OK") {
		conn.Close()
		return nil, fmt.Errorf("bench: MONITOR failed: %v", cmpErr(err, line))
	}
	_ = conn.SetDeadline(time.Time{})
	m := &monitor{conn: conn, done: make(chan struct{}), counts: map[string]map[string]int64{}}
	go m.read(rd)
	return m, nil
}

func cmpErr(err error, line string) any {
	if err != nil {
		return err
	}
	return strings.TrimSpace(line)
}

func (m *monitor) read(rd *bufio.Reader) {
	defer close(m.done)
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.mu.Lock()
				m.err = err
				m.mu.Unlock()
			}
			return
		}
		owner, cmd, ok := parseMonitorLine(line)
		if !ok {
			continue
		}
		m.mu.Lock()
		if m.counts[owner] == nil {
			m.counts[owner] = map[string]int64{}
		}
		m.counts[owner][cmd]++
		m.mu.Unlock()
	}
}

// stop closes the connection and returns the counts. Commands sent just
// before stop may still be in flight to the monitor; the bench stops it
// after the run is over, when only idle polling remains.
func (m *monitor) stop() (map[string]map[string]int64, error) {
	_ = m.conn.Close()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts, m.err
}

// parseMonitorLine reads one MONITOR line,
//
//	+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "<sha>" "2" "promptq:{a}:limits" ...
//
// and returns the owner of the command (by its first key) and the command
// in lower case. Commands run by Lua scripts ("[0 lua]") are skipped.
func parseMonitorLine(line string) (owner, cmd string, ok bool) {
	open := strings.IndexByte(line, '[')
	closeB := strings.IndexByte(line, ']')
	if !strings.HasPrefix(line, "+") || open < 0 || closeB < open {
		return "", "", false
	}
	if strings.HasSuffix(line[open:closeB], " lua") {
		return "", "", false
	}
	args := quotedArgs(line[closeB+1:], 4)
	if len(args) == 0 {
		return "", "", false
	}
	cmd = strings.ToLower(args[0])
	key := ""
	switch {
	case cmd == "evalsha" || cmd == "eval" || cmd == "evalsha_ro" || cmd == "eval_ro":
		if len(args) >= 4 {
			key = args[3]
		}
	case len(args) >= 2:
		key = args[1]
	}
	switch {
	case strings.HasPrefix(key, keys.Prefix):
		owner = OwnerPromptq
	case strings.HasPrefix(key, keys.AsynqPrefix):
		owner = OwnerAsynq
	default:
		owner = OwnerOther
	}
	return owner, cmd, true
}

// quotedArgs returns up to n double-quoted, backslash-escaped arguments
// from s (escapes are kept as written; only the bounds matter here).
func quotedArgs(s string, n int) []string {
	var out []string
	for len(out) < n {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		s = s[i+1:]
		var b strings.Builder
		j := 0
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				b.WriteByte(s[j])
				j++
			}
			b.WriteByte(s[j])
		}
		out = append(out, b.String())
		if j >= len(s) {
			break
		}
		s = s[j+1:]
	}
	return out
}
