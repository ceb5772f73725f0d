package pool

import (
	"cmp"
	"errors"
	"io/fs"
	"os"
	"slices"
)

// NameDefault is the pool's name when the file gives none.
const NameDefault = "pool"

// Pool is the set of accounts a worker may send a task to.
type Pool struct {
	// Name is the namespace of the pool's shared task claims and answers
	// (default NameDefault). It differs from every account's name.
	Name string `json:"name" yaml:"name"`
	// Accounts are sorted by Tier, then by their order in the file.
	Accounts []Account `json:"accounts" yaml:"accounts"`
}

// Account returns the account called name.
func (p *Pool) Account(name string) (Account, bool) {
	i := slices.IndexFunc(p.Accounts, func(a Account) bool { return a.Name == name })
	if i < 0 {
		return Account{}, false
	}
	return p.Accounts[i], true
}

// Load reads the pool file at path and returns the pool, validated, with
// defaults filled and each account's key read with getenv (os.Getenv when
// nil). Any error is an *Error.
func Load(path string, getenv func(string) string) (*Pool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already the error's source
		}
		return nil, &Error{Source: path, Msg: "cannot be read: " + oneLine(err.Error())}
	}
	return Parse(data, path, getenv)
}

// Parse is Load for a file already read; source names it in errors.
func Parse(data []byte, source string, getenv func(string) string) (*Pool, error) {
	p := parser{src: cmp.Or(source, "pool"), getenv: getenv}
	if p.getenv == nil {
		p.getenv = os.Getenv
	}
	return p.parse(data)
}
