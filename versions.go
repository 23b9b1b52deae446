package modelfleet

import "strings"

// CompareVersions orders model versions as Azure ML numbers them: integer
// versions numerically ("2" before "10", any number of digits), before any
// other versions, which are ordered as strings. Equal numbers written
// differently ("010" and "10") are ordered as strings too, so this is a total
// order and a sorted list is deterministic. It returns a negative number when
// a sorts before b, a positive one when after, and 0 only when a == b.
func CompareVersions(a, b string) int {
	ai, bi := isDigits(a), isDigits(b)
	switch {
	case ai && bi:
		ta, tb := trimZeros(a), trimZeros(b)
		if len(ta) != len(tb) { // no overflow for any number of digits
			return len(ta) - len(tb)
		}
		if c := strings.Compare(ta, tb); c != 0 {
			return c
		}
	case ai:
		return -1
	case bi:
		return 1
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

func trimZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}
