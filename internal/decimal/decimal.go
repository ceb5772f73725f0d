// Package decimal tells a plain decimal figure ("12", "1.5") from the other
// strings strconv.ParseFloat accepts, for reading numbers out of a
// provider's headers and error messages (quota, quota/backoff).
package decimal

// Valid reports whether s is digits with at most one dot ("12", "1.5",
// ".5", "3."), which keeps strconv.ParseFloat from accepting "NaN", "1e9",
// "0x1p4" or signs.
func Valid(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
