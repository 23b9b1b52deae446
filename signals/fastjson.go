package signals

import (
	"strconv"
	"time"

	"github.com/modelfleet/modelfleet/internal/jsonscan"
)

// A decoder for exactly the JSON this package writes, because
// encoding/json's reflection costs ~60 µs per KB of histogram counts on the
// monitor's hot path, ten times the evaluation itself. It accepts a strict
// subset: known keys in their exact case, each at most once; strings of
// printable ASCII without escapes; numbers in JSON's grammar; no nulls.
// Anything else makes it give up (ok false), and the caller decodes with
// encoding/json, which stays the authority on what a message means and on
// every error. FuzzFastDecode holds the two to the same result whenever
// this one succeeds.
type scanner struct {
	jsonscan.Scanner
	// arena backs the decoded count slices, so that a message's thousand
	// counts take a few allocations rather than one per histogram. Each
	// slice is capped at its length: appending to one never writes into
	// the next.
	arena []int64
}

func (s *scanner) string() (string, bool) {
	b, ok := s.String()
	return string(b), ok
}

func (s *scanner) int64() (int64, bool) {
	tok, integer, ok := s.Number()
	if !ok || !integer {
		return 0, false
	}
	// Inline for the common case: up to 18 digits cannot overflow.
	if n := len(tok); n > 0 && n <= 18 && tok[0] != '-' {
		var v int64
		for _, c := range tok {
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	return v, err == nil
}

// count reads an integer: the common case of a histogram count (up to 18
// digits, no sign, no leading zero, followed by ',' or ']') inline, in one
// pass, anything else through int64. Counts are most of a message's bytes.
func (s *scanner) count() (int64, bool) {
	b, i := s.B, s.I
	var v int64
	n := 0
	for ; i < len(b) && n < 19; i, n = i+1, n+1 {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		v = v*10 + int64(c)
	}
	if n > 0 && n < 19 && (n == 1 || b[s.I] != '0') && i < len(b) && (b[i] == ',' || b[i] == ']') {
		s.I = i
		return v, true
	}
	return s.int64()
}

func (s *scanner) float64() (float64, bool) {
	tok, _, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	return v, err == nil
}

// float64p reads a number into a new variable (an optional field).
func (s *scanner) float64p() (*float64, bool) {
	v, ok := s.float64()
	if !ok {
		return nil, false
	}
	return &v, true
}

func (s *scanner) time() (time.Time, bool) {
	s.Space()
	start := s.I
	if _, ok := s.String(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	return t, t.UnmarshalJSON(s.B[start:s.I]) == nil
}

// ints reads an array of integers; [] is an empty, non-nil slice, as
// encoding/json makes it.
func (s *scanner) ints() ([]int64, bool) {
	if !s.Next('[') {
		return nil, false
	}
	if s.Next(']') {
		return []int64{}, true
	}
	start := len(s.arena)
	for {
		v, ok := s.count()
		if !ok {
			return nil, false
		}
		if len(s.arena) == cap(s.arena) {
			// A new chunk: move this array's values so far along.
			grown := make([]int64, len(s.arena)-start, max(4096, 2*(len(s.arena)-start)))
			copy(grown, s.arena[start:])
			s.arena, start = grown, 0
		}
		s.arena = append(s.arena, v)
		if s.Next(']') {
			return s.arena[start:len(s.arena):len(s.arena)], true
		}
		if !s.Next(',') {
			return nil, false
		}
	}
}

// object calls field for each key of an object. field returns the key's
// number (0 to 63) among the fields it knows, or -1 to give up; a key seen
// twice gives up too (encoding/json would keep the last; the fallback
// does that).
func (s *scanner) object(field func(key []byte) int) bool {
	if !s.Next('{') {
		return false
	}
	if s.Next('}') {
		return true
	}
	var seen uint64
	for {
		key, ok := s.String()
		if !ok || !s.Next(':') {
			return false
		}
		n := field(key)
		if n < 0 || seen&(1<<n) != 0 {
			return false
		}
		seen |= 1 << n
		if s.Next('}') {
			return true
		}
		if !s.Next(',') {
			return false
		}
	}
}

// array calls elem for each element of an array.
func (s *scanner) array(elem func() bool) bool {
	if !s.Next('[') {
		return false
	}
	if s.Next(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.Next(']') {
			return true
		}
		if !s.Next(',') {
			return false
		}
	}
}
