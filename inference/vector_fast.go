package inference

import (
	"math"
	"strconv"
)

// vectorFast reads the request bodies clients send on every score
// request — {"features": {"name": number, ...}}, {"name": number, ...},
// {"features": [number, ...]} and [number, ...] — in one pass without
// allocating more than the row, for a model with at most
// maxFastFeatures named features. It gives up (ok false) on anything
// else: escapes in names, duplicate, unknown or missing features, values
// that are not numbers, JSON it does not expect or that is not valid.
// Vector then reads the body the general way, which also says what is
// wrong; FuzzVector checks that whatever this reads, that reads the same.
func vectorFast(features []string, body []byte) (row []float64, ok bool) {
	if len(features) == 0 || len(features) > maxFastFeatures {
		return nil, false
	}
	s := scanner{b: body}
	s.space()
	switch {
	case s.take('['):
		row, ok = s.array(features)
	case s.take('{'):
		s.space()
		start := s.i
		name, isName := s.name()
		if !isName {
			return nil, false
		}
		s.space()
		if !s.take(':') {
			return nil, false
		}
		s.space()
		if string(name) == "features" && s.i < len(s.b) && (s.b[s.i] == '{' || s.b[s.i] == '[') {
			// The wrapper: {"features": ...} and nothing beside it.
			if s.take('{') {
				row, ok = s.object(features)
			} else {
				s.take('[')
				row, ok = s.array(features)
			}
			s.space()
			if !ok || !s.take('}') {
				return nil, false
			}
		} else {
			s.i = start
			row, ok = s.object(features)
		}
	}
	s.space()
	if !ok || s.i != len(s.b) {
		return nil, false
	}
	return row, true
}

// maxFastFeatures is the most features vectorFast reads (a bit each).
const maxFastFeatures = 64

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) take(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads `"name": number, ...}` (the '{' taken) into a row ordered
// by features: each feature exactly once.
func (s *scanner) object(features []string) ([]float64, bool) {
	row := make([]float64, len(features))
	var set uint64
	s.space()
	if s.take('}') {
		return nil, false // no features: missing ones
	}
	for k := 0; ; k++ {
		s.space()
		name, ok := s.name()
		if !ok {
			return nil, false
		}
		i := index(features, name, k)
		if i < 0 || set&(1<<i) != 0 {
			return nil, false
		}
		set |= 1 << i
		s.space()
		if !s.take(':') {
			return nil, false
		}
		s.space()
		if row[i], ok = s.number(); !ok {
			return nil, false
		}
		s.space()
		if s.take('}') {
			break
		}
		if !s.take(',') {
			return nil, false
		}
	}
	if set != 1<<len(features)-1 {
		return nil, false
	}
	return row, true
}

// array reads `number, ...]` (the '[' taken): exactly len(features).
func (s *scanner) array(features []string) ([]float64, bool) {
	row := make([]float64, len(features))
	for k := range row {
		s.space()
		var ok bool
		if row[k], ok = s.number(); !ok {
			return nil, false
		}
		s.space()
		if k < len(row)-1 && !s.take(',') {
			return nil, false
		}
	}
	if !s.take(']') {
		return nil, false
	}
	return row, true
}

// index is where name is in features, trying position k first (clients
// send features in the model's order).
func index(features []string, name []byte, k int) int {
	if k < len(features) && features[k] == string(name) {
		return k
	}
	for i, f := range features {
		if f == string(name) {
			return i
		}
	}
	return -1
}

// name reads a JSON string without escapes or control characters, and
// returns its bytes.
func (s *scanner) name() ([]byte, bool) {
	if !s.take('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false // escapes, control characters, non-ASCII: the general way
		}
		s.i++
	}
	return nil, false
}

// number reads a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
// that fits a float64.
func (s *scanner) number() (float64, bool) {
	start := s.i
	s.take('-')
	switch {
	case s.take('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return 0, false
	}
	if s.take('.') && !s.digits() {
		return 0, false
	}
	if s.take('e') || s.take('E') {
		if !s.take('+') {
			s.take('-')
		}
		if !s.digits() {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// digits reads one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
