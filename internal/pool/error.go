package pool

import (
	"fmt"
	"strings"
)

// Error is a pool file that cannot be used: where (file, line, account,
// field) and why. Its message is one line, never holds an API key, and reads
//
//	pool.yaml:7: account "east": tier must be between 1 and 9, got 0
type Error struct {
	Source  string // the file's name as given to Load or Parse
	Line    int    // 1-based; 0 when the file has no line to point at
	Account string // the account's name; "" for the pool itself or an unnamed account
	Index   int    // the account's 1-based position in the file; 0 for the pool itself
	Field   string // e.g. "tier"; "" when the message is about a whole account or the file
	Msg     string // what is wrong, starting after the field's name
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	switch {
	case e.Account != "":
		fmt.Fprintf(&b, "account %q: ", e.Account)
	case e.Index > 0:
		fmt.Fprintf(&b, "account #%d: ", e.Index)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// oneLine keeps a message from a library (yaml, the file system) to one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
