package decimal

import "testing"

func TestValid(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"12", true}, {"1.5", true}, {".5", true}, {"3.", true}, {"0", true},
		{"", false}, {".", false}, {"1.2.3", false}, {"-1", false}, {"+1", false},
		{"1e9", false}, {"NaN", false}, {"Inf", false}, {"0x1p4", false}, {" 1", false}, {"1_000", false},
	} {
		if got := Valid(c.s); got != c.want {
			t.Errorf("Valid(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
