package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
)

// authKind is how a route authenticates when an admin token is set.
type authKind int

const (
	authNone   authKind = iota // open: health probes, the OpenAPI document
	authBearer                 // "Authorization: Bearer <token>" only (/v1, /metrics)
	authUI                     // bearer, or basic auth with the token as password (the dashboard)
)

// authorized reports whether r carries the admin token in a form kind
// accepts. Tokens are compared in constant time after hashing both, so not
// even the length leaks. Basic credentials are refused on the API: browsers
// resend them on cross-site requests once the dashboard was opened.
func (s *Server) authorized(r *http.Request, kind authKind) bool {
	if s.tokenHash == nil || kind == authNone {
		return true
	}
	var given string
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = strings.TrimSpace(tok)
	} else if _, pw, ok := r.BasicAuth(); ok && kind == authUI {
		given = pw
	}
	if given == "" {
		return false
	}
	h := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

// hostAllowed reports whether r's Host header names this server: a page on
// an attacker's domain that resolves to 127.0.0.1 (DNS rebinding) sends its
// own domain as Host.
func (s *Server) hostAllowed(r *http.Request) bool {
	if len(s.cfg.AllowedHosts) == 0 && s.tokenHash != nil {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if len(s.cfg.AllowedHosts) > 0 {
		for _, h := range s.cfg.AllowedHosts {
			if strings.EqualFold(strings.Trim(h, "[]"), host) {
				return true
			}
		}
		return false
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	if b := s.boundHost.Load(); b != nil && *b == host {
		return true
	}
	return false
}

// isJSON reports whether the request says its body is JSON.
func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// unsafeMethod reports whether m may change state.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// clientLimiter bounds the requests in flight per client address.
type clientLimiter struct {
	max      int
	mu       sync.Mutex
	inFlight map[string]int
}

func newClientLimiter(n int) *clientLimiter {
	return &clientLimiter{max: n, inFlight: map[string]int{}}
}

// acquire counts a request of client in; false when it has max already.
func (l *clientLimiter) acquire(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[client] >= l.max {
		return false
	}
	l.inFlight[client]++
	return true
}

func (l *clientLimiter) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[client]--; l.inFlight[client] <= 0 {
		delete(l.inFlight, client)
	}
}

// count returns client's requests in flight.
func (l *clientLimiter) count(client string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight[client]
}

// clientOf is the client address of r: its peer IP. Behind a proxy every
// request shares the proxy's address; X-Forwarded-For is not trusted.
func clientOf(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// protect is the outermost layer of every request: the per-client bound,
// then the Host allow-list, then the cross-origin check on state-changing
// requests (Sec-Fetch-Site, else Origin against Host; net/http's
// CrossOriginProtection).
func (s *Server) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := clientOf(r)
		if !s.clients.acquire(client) {
			w.Header().Set("Retry-After", "1")
			fail(w, http.StatusTooManyRequests, CodeTooManyRequests,
				"this client has too many requests in flight; wait for one to finish", "")
			return
		}
		defer s.clients.release(client)
		if !s.hostAllowed(r) {
			fail(w, http.StatusForbidden, CodeHostNotAllowed,
				"the Host header does not name this server; add it with --allowed-hosts", "")
			return
		}
		if err := s.cop.Check(r); err != nil {
			fail(w, http.StatusForbidden, CodeOriginNotAllowed,
				"state-changing requests from another origin are refused; add it with --allowed-origins", "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guard applies a route's own checks, in order: authentication, read-only
// mode, a JSON Content-Type on POST and PUT to the API (a cross-site form
// can send text/plain without a CORS preflight; JSON needs one, which serve
// never grants), and the body limit.
func (s *Server) guard(kind authKind, api bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r, kind) {
			if kind == authUI {
				w.Header().Set("WWW-Authenticate", `Basic realm="promptq", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="promptq"`)
			}
			fail(w, http.StatusUnauthorized, CodeUnauthorized, "send the admin token as 'Authorization: Bearer <token>'", "")
			return
		}
		if s.cfg.ReadOnly && unsafeMethod(r.Method) {
			fail(w, http.StatusForbidden, CodeReadOnly, "the server is read-only", "")
			return
		}
		if api && (r.Method == http.MethodPost || r.Method == http.MethodPut) && !isJSON(r) {
			fail(w, http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body with 'Content-Type: application/json'", "")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		}
		next.ServeHTTP(w, r)
	})
}
