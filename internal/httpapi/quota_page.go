package httpapi

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/promptq/promptq/internal/status"
)

// QuotaPath is where the quota page is served (next to MonitoringPath).
const QuotaPath = "/quota"

// quotaUI is the quota page: plain HTML and JavaScript, and uPlot (MIT,
// vendored from the npm registry, see quotaui/vendor/uplot/VERSION).
//
//go:embed quotaui
var quotaUI embed.FS

// QuotaAccount is one account on the quota page: its pause and its quota
// (the same DTOs as GET /v1/status).
type QuotaAccount struct {
	Pause status.Pause `json:"pause"`
	Quota status.Quota `json:"quota"`
}

// QuotaReport is GET /v1/quota: every account's pause and quota, and the
// pools that hold them, cheap enough to poll every second (no queue is read).
type QuotaReport struct {
	Now      string                  `json:"now"`
	Accounts map[string]QuotaAccount `json:"accounts"`
	// Pools are the account pools that hold any of Accounts, with their
	// members' states and shares of today's requests (as in GET /v1/status).
	Pools map[string]status.Pool `json:"pools"`
}

// handleQuota is GET /v1/quota?account=A.
func (s *Server) handleQuota(w http.ResponseWriter, r *http.Request) {
	accts, ok := s.accounts(w, r)
	if !ok {
		return
	}
	now := s.cfg.Clock.Now()
	rep := QuotaReport{Now: now.UTC().Format(time.RFC3339Nano), Accounts: make(map[string]QuotaAccount, len(accts))}
	read := make(map[string]status.AccountRead, len(accts))
	for _, a := range accts {
		ar, err := status.ReadAccount(r.Context(), s.gate, s.lim, a, now)
		if err != nil {
			s.log.Error().Err(err).Str("account", a).Msg("quota failed")
			fail(w, http.StatusServiceUnavailable, CodeUnavailable, "reading the quota failed; Redis may be unreachable", "")
			return
		}
		read[a] = ar
		rep.Accounts[a] = QuotaAccount{Pause: ar.Pause, Quota: status.NewQuota(ar.Snapshot)}
	}
	pools, err := status.CollectPools(r.Context(), s.cfg.Redis, s.gate, s.lim, accts, read, now)
	if err != nil {
		s.log.Error().Err(err).Msg("quota pools failed")
		fail(w, http.StatusServiceUnavailable, CodeUnavailable, "reading the pools failed; Redis may be unreachable", "")
		return
	}
	rep.Pools = pools
	writeJSON(w, http.StatusOK, rep)
}

// quotaPage serves the page and its assets, with a policy that allows only
// this origin's scripts and styles.
func quotaPage() http.Handler {
	sub, err := fs.Sub(quotaUI, "quotaui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(QuotaPath+"/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// quotaLink is added to asynqmon's pages: the way to the quota page.
const quotaLink = `<a href="` + QuotaPath + `/" style="position:fixed;right:16px;bottom:12px;z-index:2000;` +
	`background:#1976d2;color:#fff;padding:6px 12px;border-radius:4px;font:14px sans-serif;text-decoration:none">` +
	`promptq quota &rarr;</a>`

// withQuotaLink adds quotaLink to the HTML pages of next (asynqmon); its
// API answers and assets pass through untouched.
func withQuotaLink(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, MonitoringPath+"/api/") {
			next.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(bw, r)
		body := bw.buf.Bytes()
		ct := bw.header.Get("Content-Type")
		if ct == "" { // asynqmon renders its index without one
			ct = http.DetectContentType(body)
		}
		if strings.HasPrefix(ct, "text/html") && bw.header.Get("Content-Encoding") == "" {
			if i := bytes.LastIndex(body, []byte("</body>")); i >= 0 {
				body = append(body[:i:i], append([]byte(quotaLink), body[i:]...)...)
			}
			bw.header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		for k, v := range bw.header {
			w.Header()[k] = v
		}
		w.WriteHeader(bw.status)
		_, _ = w.Write(body)
	})
}

// bufferedWriter holds a whole response so it can be changed.
type bufferedWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(code int)        { b.status = code }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
