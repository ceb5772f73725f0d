package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the API, served at /openapi.json.
// openapi_test.go checks every route's real responses against it.
//
//go:embed openapi.json
var openAPIDoc []byte

// handleOpenAPI is GET /openapi.json.
func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPIDoc)
}
