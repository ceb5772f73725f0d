package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeJSON writes v as the JSON body of a response with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes {"error": msg, "field": field} with status code.
func writeError(w http.ResponseWriter, code int, msg, field string) {
	writeJSON(w, code, apiError{Error: msg, Field: field})
}

// readBody reads the whole (size-limited) body. On failure it has already
// answered: 413 when the body is over the limit, 400 otherwise.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit), "body")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error(), "body")
		return nil, false
	}
	return bytes.TrimSpace(data), true
}

// decodeBody decodes a JSON object body into dst, rejecting unknown fields.
// An empty body leaves dst as it is. On failure it has already answered.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	data, ok := readBody(w, r)
	if !ok {
		return false
	}
	if len(data) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("must be %s, not %s", typeErr.Type, typeErr.Value), typeErr.Field)
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), "body")
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "trailing data after the JSON object", "body")
		return false
	}
	return true
}
