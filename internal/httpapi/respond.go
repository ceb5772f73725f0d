package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/promptq/promptq/internal/jsonwords"
	"io"
	"net/http"
	"strings"
)

// writeJSON writes v as the JSON body of a response with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	writeBody(w, "application/json; charset=utf-8", code, v)
}

func writeBody(w http.ResponseWriter, contentType string, code int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readBody reads the whole (size-limited) body. On failure it has already
// answered: 413 when the body is over the limit, 400 otherwise.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the request body is over the limit of %d bytes", tooBig.Limit), "body")
		return nil, false
	case err != nil:
		fail(w, http.StatusBadRequest, CodeInvalidJSON, "the request body could not be read", "body")
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
		msg, field := describeJSONError(err)
		code := CodeInvalidJSON
		if field != "body" {
			code = CodeInvalidField
		}
		fail(w, http.StatusBadRequest, code, msg, field)
		return false
	}
	if dec.More() {
		fail(w, http.StatusBadRequest, CodeInvalidJSON, "trailing data after the JSON object", "body")
		return false
	}
	return true
}

// describeJSONError explains a decoding error in JSON's terms (never Go's
// type names) and names the field it concerns ("body" for the whole).
func describeJSONError(err error) (msg, field string) {
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("must be %s, not %s", jsonwords.Kind(typeErr.Type), jsonValueKind(typeErr.Value)), typeErr.Field
	case errors.As(err, &typeErr):
		return fmt.Sprintf("the body must be %s, not %s", jsonwords.Kind(typeErr.Type), jsonValueKind(typeErr.Value)), "body"
	case errors.As(err, &synErr):
		return fmt.Sprintf("the body is not valid JSON (at byte %d)", synErr.Offset), "body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is truncated JSON", "body"
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + name, "body"
	}
	return "the body is not valid JSON", "body"
}

// jsonValueKind turns encoding/json's description of the value found
// ("string", "number 1.5", "object") into plain words.
func jsonValueKind(v string) string {
	kind, _, _ := strings.Cut(v, " ")
	switch kind {
	case "string":
		return "a string"
	case "number":
		if n, ok := strings.CutPrefix(v, "number "); ok {
			return "the number " + n
		}
		return "a number"
	case "bool":
		return "true or false"
	case "array":
		return "an array"
	case "object":
		return "an object"
	}
	return "null"
}
