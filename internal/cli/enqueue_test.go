package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/promptq/promptq/tasks"
)

func TestTrimSpace(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"{}\n", "{}"},
		{"{}\r\n", "{}"},
		{"  \t{} \t\r\n", "{}"},
		{"\xef\xbb\xbf{}\n", "{}"},     // UTF-8 BOM
		{"\xef\xbb\xbf  {}\r\n", "{}"}, // BOM then blanks
		{"\xef\xbb{}", "\xef\xbb{}"},   // not a whole BOM: left for the parser to refuse
		{"\r\n", ""},
		{"", ""},
	} {
		if got := string(trimSpace([]byte(tc.in))); got != tc.want {
			t.Errorf("trimSpace(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A file saved with a BOM and CRLF line ends is read like any other; a bad
// line is reported with its number and does not stop the lines after it.
func TestEnqueueBOMAndBadLines(t *testing.T) {
	t.Parallel()
	r, queue, insp := setupQueue(t)
	line := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"model":"gpt-4o-mini","input":"hi","queue":%q}`, id, queue)
	}
	input := "\xef\xbb\xbf" + line("bom-1") + "\r\n" +
		`{"id":"broken","model":` + "\r\n" +
		"\r\n" +
		fmt.Sprintf(`{"id":"no-model","input":"hi","queue":%q}`, queue) + "\r\n" +
		line("bom-2") + "\r\n"

	out, errOut, err := runCLI(t, input, "enqueue", "--redis", r.URL, "--file", "-")
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("error %v, want ErrBadInput (exit 1, already reported)", err)
	}
	if got, want := strings.TrimSpace(out), "enqueued: 2, duplicates: 0, invalid: 2"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	lines := stderrLines(errOut)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "line 2: ") || !strings.HasPrefix(lines[1], "line 4: ") ||
		!strings.Contains(lines[1], "model") {
		t.Errorf("stderr %q, want one line for line 2 (JSON) and one for line 4 (model)", lines)
	}
	for _, id := range []string{"bom-1", "bom-2"} {
		if _, err := tasks.GetResult(t.Context(), insp, queue, id); !errors.Is(err, tasks.ErrNotFinished) {
			t.Errorf("task %s: %v, want it pending", id, err)
		}
	}

	// The same file again adds nothing: the ids are idempotency keys.
	out, _, _ = runCLI(t, input, "enqueue", "--redis", r.URL, "--file", "-", "--json")
	if got, want := strings.TrimSpace(out), `{"enqueued":0,"duplicates":2,"invalid":2,"failed":0,"lines":4}`; got != want {
		t.Errorf("second run: stdout %q, want %q", got, want)
	}
}
