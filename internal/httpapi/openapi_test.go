package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/promptq/promptq/pausegate"
)

// newValidator parses the served document with libopenapi-validator and
// checks the document itself against the OpenAPI 3.1 schema.
func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(openAPIDoc)
	if err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if doc.GetVersion() != "3.1.0" {
		t.Fatalf("openapi.json is version %q, want 3.1.0", doc.GetVersion())
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("openapi.json: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	return v
}

// The document lists exactly the routes the server registers.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" {
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	s := &Server{cfg: Config{}}
	for _, rt := range s.apiRoutes(http.NotFoundHandler()) {
		key := rt.method + " " + rt.pattern
		if !documented[key] {
			t.Errorf("route %s is not in openapi.json", key)
		}
		delete(documented, key)
	}
	for k := range documented {
		t.Errorf("openapi.json documents %s, which the server does not serve", k)
	}
}

// exchange is one real request and the route it exercises.
type exchange struct {
	route              string // "METHOD /pattern" of apiRoutes
	method, path, body string
	token              string
	contentType        string // default application/json for POST and PUT
	want               int
}

// Every route's real responses, successes and errors, validate against the
// document, and every route is exercised.
func TestOpenAPIResponsesValidate(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	const token = "openapi-token-0123456789"
	e := setup(t, func(c *Config) { c.AdminToken = token })
	_, other := e.addPool(t, 2, 1) // /v1/status and /v1/quota hold a pool
	gate, err := pausegate.New(e.r.Client, pausegate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gate.PauseModel(context.Background(), other, "m", time.Time{}, "model_not_found"); err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf(`{"model":"m","input":%q,"queue":%q}`, strings.Repeat("a", 1<<20), e.queue)
	a := "?account=" + e.account
	exchanges := []exchange{
		{"GET /healthz", "GET", "/healthz", "", "", "", 200},
		{"GET /readyz", "GET", "/readyz", "", "", "", 200},
		{"GET /openapi.json", "GET", "/openapi.json", "", "", "", 200},
		{"GET /metrics", "GET", "/metrics", "", token, "", 200},
		{"GET /metrics", "GET", "/metrics", "", "", "", 401},
		{"POST /v1/tasks", "POST", "/v1/tasks", e.task("oa-1"), token, "", 202},
		{"POST /v1/tasks", "POST", "/v1/tasks", e.task("oa-1"), token, "", 409},
		{"POST /v1/tasks", "POST", "/v1/tasks", "[" + e.task("oa-2") + "," + e.task("oa-3") + "]", token, "", 202},
		{"POST /v1/tasks", "POST", "/v1/tasks", "[" + e.task("oa-1") + `,{"model":"m"}]`, token, "", 207},
		{"POST /v1/tasks", "POST", "/v1/tasks", `{"model":"m","input":"hi","max_output_tokens":0}`, token, "", 400},
		{"POST /v1/tasks", "POST", "/v1/tasks", big, token, "", 413},
		{"POST /v1/tasks", "POST", "/v1/tasks", e.task("oa-4"), token, "text/plain", 415},
		{"POST /v1/tasks", "POST", "/v1/tasks", e.task("oa-4"), "", "", 401},
		{"GET /v1/tasks/{id}", "GET", "/v1/tasks/oa-1", "", token, "", 200},
		{"GET /v1/tasks/{id}", "GET", "/v1/tasks/oa-1?queue=" + e.queue, "", token, "", 200},
		{"GET /v1/tasks/{id}", "GET", "/v1/tasks/nope", "", token, "", 404},
		{"POST /v1/pause", "POST", "/v1/pause" + a, `{"for":"10m","reason":"openapi"}`, token, "", 200},
		{"POST /v1/pause", "POST", "/v1/pause" + a, `{"for":"soon"}`, token, "", 400},
		{"POST /v1/pause", "POST", "/v1/pause?account=nope-" + e.account, `{}`, token, "", 404},
		{"GET /v1/status", "GET", "/v1/status", "", token, "", 200},
		{"GET /v1/status", "GET", "/v1/status" + a, "", token, "", 200},
		{"GET /v1/status", "GET", "/v1/status?account=nope-" + e.account, "", token, "", 404},
		{"GET /v1/quota", "GET", "/v1/quota", "", token, "", 200}, // paused, in the middle of this list
		{"GET /v1/quota", "GET", "/v1/quota" + a, "", token, "", 200},
		{"GET /v1/quota", "GET", "/v1/quota?account=nope-" + e.account, "", token, "", 404},
		{"GET /v1/quota", "GET", "/v1/quota", "", "", "", 401},
		{"POST /v1/resume", "POST", "/v1/resume" + a, "", token, "", 200},
		{"POST /v1/resume", "POST", "/v1/resume", `{}`, token, "", 200},
		{"POST /v1/resume", "POST", "/v1/resume", `{"account":"x"}`, token, "", 400},
		{"PUT /v1/tenants/{tenant}", "PUT", "/v1/tenants/oa-t" + a, `{"rpm":60,"weight":2}`, token, "", 200},
		{"PUT /v1/tenants/{tenant}", "PUT", "/v1/tenants/oa-t" + a, `{"rpm":-1}`, token, "", 400},
		{"GET /v1/tenants", "GET", "/v1/tenants" + a, "", token, "", 200},
		{"GET /v1/tenants/{tenant}", "GET", "/v1/tenants/oa-t" + a, "", token, "", 200},
		{"GET /v1/tenants/{tenant}", "GET", "/v1/tenants/none" + a, "", token, "", 404},
		{"GET /v1/status", "GET", "/v1/status", "", token, "", 200}, // now with a tenant in quota
		{"DELETE /v1/tenants/{tenant}", "DELETE", "/v1/tenants/oa-t" + a, "", token, "", 204},
		{"DELETE /v1/tenants/{tenant}", "DELETE", "/v1/tenants/oa-t" + a, "", token, "", 404},
		{"GET /v1/tenants", "GET", "/v1/tenants" + a, "", token, "", 200},
		{"GET /v1/status", "GET", "/v1/status", "", token, "", 200},
	}
	seen := map[string]bool{}
	for i, x := range exchanges {
		var body io.Reader
		if x.body != "" {
			body = strings.NewReader(x.body)
		}
		req, err := http.NewRequest(x.method, e.ts.URL+x.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if x.token != "" {
			req.Header.Set("Authorization", "Bearer "+x.token)
		}
		if ct := x.contentType; ct != "" {
			req.Header.Set("Content-Type", ct)
		} else if x.method == "POST" || x.method == "PUT" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != x.want {
			t.Fatalf("#%d %s %s: %d, want %d: %s", i, x.method, x.path, resp.StatusCode, x.want, b)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		// The validator reads the request again: give it a fresh one.
		vreq, _ := http.NewRequest(x.method, "http://localhost"+x.path, nil)
		if ok, errs := v.ValidateHttpResponse(vreq, resp); !ok {
			for _, ve := range errs {
				t.Errorf("#%d %s %s -> %d: %s: %s", i, x.method, x.path, resp.StatusCode, ve.Message, ve.Reason)
				for _, se := range ve.SchemaValidationErrors {
					t.Errorf("    %s at %s (schema %s)", se.Reason, se.FieldPath, se.KeywordLocation)
				}
			}
			t.Logf("body: %.600s", b)
		}
		seen[x.route] = true
	}
	var missing []string
	s := &Server{cfg: Config{}}
	for _, rt := range s.apiRoutes(http.NotFoundHandler()) {
		if !seen[rt.method+" "+rt.pattern] {
			missing = append(missing, rt.method+" "+rt.pattern)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes with no exchange in this test: %v", missing)
	}
}
