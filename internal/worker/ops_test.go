package worker

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/promptq/promptq/internal/testutil"
)

func TestOpsHandler(t *testing.T) {
	r := testutil.NewRedis(t)
	acct := testutil.Name(t)
	testutil.CleanupAccount(t, r.Client, acct)
	h, err := OpsHandler(r.Client, acct)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `promptq_paused{account="`+acct+`"}`) {
		t.Fatalf("/metrics = %d, want the account's promptq series:\n%s", code, body)
	}
	// Redis unreachable: unhealthy.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer dead.Close()
	hd, err := OpsHandler(dead, acct)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz without Redis = %d, want 503", rec.Code)
	}
}
