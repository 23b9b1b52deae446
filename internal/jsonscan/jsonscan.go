// Package jsonscan reads JSON tokens from a byte slice, for the decoders
// hand-written for hot paths (the monitoring signals' messages, the
// router's score bodies), where encoding/json's reflection costs more than
// the work itself. It reads a strict subset — strings of printable ASCII
// without escapes, numbers in JSON's grammar — and says "not this" (false)
// for anything else, so that a caller can give the input to encoding/json,
// which stays the authority on what it means and on every error. Every
// read skips the whitespace before its token.
package jsonscan

// Scanner reads B from I on.
type Scanner struct {
	B []byte
	I int
}

// Space skips whitespace.
func (s *Scanner) Space() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Next skips whitespace and consumes c if it comes next.
func (s *Scanner) Next(c byte) bool {
	s.Space()
	if s.I < len(s.B) && s.B[s.I] == c {
		s.I++
		return true
	}
	return false
}

// Peek skips whitespace and returns the next byte (0 at the end).
func (s *Scanner) Peek() byte {
	s.Space()
	if s.I < len(s.B) {
		return s.B[s.I]
	}
	return 0
}

// String reads a string of printable ASCII without escapes and returns its
// bytes (aliasing B).
func (s *Scanner) String() ([]byte, bool) {
	if !s.Next('"') {
		return nil, false
	}
	start := s.I
	for s.I < len(s.B) {
		c := s.B[s.I]
		switch {
		case c == '"':
			s.I++
			return s.B[start : s.I-1], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
		s.I++
	}
	return nil, false
}

// Number reads a token in JSON's number grammar
// (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?) and reports whether it is
// an integer (no fraction or exponent).
func (s *Scanner) Number() (tok []byte, integer, ok bool) {
	s.Space()
	start := s.I
	if s.I < len(s.B) && s.B[s.I] == '-' {
		s.I++
	}
	switch {
	case s.I < len(s.B) && s.B[s.I] == '0':
		s.I++
	case s.I < len(s.B) && s.B[s.I] >= '1' && s.B[s.I] <= '9':
		s.Digits()
	default:
		return nil, false, false
	}
	integer = true
	if s.I < len(s.B) && s.B[s.I] == '.' {
		integer = false
		s.I++
		if !s.Digits() {
			return nil, false, false
		}
	}
	if s.I < len(s.B) && (s.B[s.I] == 'e' || s.B[s.I] == 'E') {
		integer = false
		s.I++
		if s.I < len(s.B) && (s.B[s.I] == '+' || s.B[s.I] == '-') {
			s.I++
		}
		if !s.Digits() {
			return nil, false, false
		}
	}
	return s.B[start:s.I], integer, true
}

// Digits reads one or more decimal digits.
func (s *Scanner) Digits() bool {
	start := s.I
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		s.I++
	}
	return s.I > start
}

// End skips whitespace and reports whether nothing follows.
func (s *Scanner) End() bool {
	s.Space()
	return s.I == len(s.B)
}
