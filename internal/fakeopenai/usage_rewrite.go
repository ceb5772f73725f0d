package fakeopenai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// RewriteUsage wraps h (normally a *Server) so that every number inside a
// "usage" object of its answers, JSON bodies and SSE data lines alike, is
// passed through f: an OpenAI-compatible server that reports negative or
// absurd usage. The answer is buffered (a stream arrives in one piece).
//
//	srv := httptest.NewServer(fakeopenai.RewriteUsage(fake, func(n int64) int64 { return -n }))
func RewriteUsage(h http.Handler, f func(int64) int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		switch ct := rec.header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "application/json"):
			body = rewriteJSON(body, f)
		case strings.HasPrefix(ct, "text/event-stream"):
			lines := bytes.Split(body, []byte("\n"))
			for i, l := range lines {
				if rest, ok := bytes.CutPrefix(l, []byte("data: ")); ok {
					lines[i] = append([]byte("data: "), rewriteJSON(rest, f)...)
				}
			}
			body = bytes.Join(lines, []byte("\n"))
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
	})
}

// rewriteJSON applies f to the numbers under every "usage" key of b; b is
// returned unchanged when it is not JSON.
func rewriteJSON(b []byte, f func(int64) int64) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return b
	}
	out, err := json.Marshal(walkUsage(v, f, false))
	if err != nil {
		return b
	}
	return out
}

func walkUsage(v any, f func(int64) int64, inUsage bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = walkUsage(e, f, inUsage || k == "usage")
		}
	case []any:
		for i, e := range x {
			x[i] = walkUsage(e, f, inUsage)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil && inUsage {
			return f(n)
		}
	}
	return v
}

// bufferedWriter keeps a handler's answer for RewriteUsage.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(code int)        { b.status = code }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedWriter) Flush()                      {}
