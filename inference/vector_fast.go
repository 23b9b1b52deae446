package inference

import (
	"math"
	"strconv"

	"github.com/modelfleet/modelfleet/internal/jsonscan"
)

// vectorFast reads the request bodies clients send on every score
// request — {"features": {"name": number, ...}}, {"name": number, ...},
// {"features": [number, ...]} and [number, ...] — in one pass without
// allocating more than the row, for a model with at most
// maxFastFeatures named features. It gives up (ok false) on anything
// else: escapes or non-ASCII in names, duplicate, unknown or missing
// features, values that are not numbers, JSON it does not expect or that
// is not valid. Vector then reads the body the general way, which also
// says what is wrong; FuzzVector checks that whatever this reads, that
// reads the same.
func vectorFast(features []string, body []byte) (row []float64, ok bool) {
	if len(features) == 0 || len(features) > maxFastFeatures {
		return nil, false
	}
	s := jsonscan.Scanner{B: body}
	switch {
	case s.Next('['):
		row, ok = fastArray(&s, features)
	case s.Next('{'):
		start := s.I
		name, isName := s.String()
		if !isName || !s.Next(':') {
			return nil, false
		}
		if c := s.Peek(); string(name) == "features" && (c == '{' || c == '[') {
			// The wrapper: {"features": ...} and nothing beside it.
			if s.Next('{') {
				row, ok = fastObject(&s, features)
			} else {
				s.Next('[')
				row, ok = fastArray(&s, features)
			}
			if !ok || !s.Next('}') {
				return nil, false
			}
		} else {
			s.I = start
			row, ok = fastObject(&s, features)
		}
	}
	if !ok || !s.End() {
		return nil, false
	}
	return row, true
}

// maxFastFeatures is the most features vectorFast reads (a bit each).
const maxFastFeatures = 64

// fastObject reads `"name": number, ...}` (the '{' taken) into a row
// ordered by features: each feature exactly once.
func fastObject(s *jsonscan.Scanner, features []string) ([]float64, bool) {
	row := make([]float64, len(features))
	var set uint64
	if s.Next('}') {
		return nil, false // no features: missing ones
	}
	for k := 0; ; k++ {
		name, ok := s.String()
		if !ok {
			return nil, false
		}
		i := index(features, name, k)
		if i < 0 || set&(1<<i) != 0 || !s.Next(':') {
			return nil, false
		}
		set |= 1 << i
		if row[i], ok = fastNumber(s); !ok {
			return nil, false
		}
		if s.Next('}') {
			break
		}
		if !s.Next(',') {
			return nil, false
		}
	}
	if set != 1<<len(features)-1 {
		return nil, false
	}
	return row, true
}

// fastArray reads `number, ...]` (the '[' taken): exactly len(features).
func fastArray(s *jsonscan.Scanner, features []string) ([]float64, bool) {
	row := make([]float64, len(features))
	for k := range row {
		var ok bool
		if row[k], ok = fastNumber(s); !ok {
			return nil, false
		}
		if k < len(row)-1 && !s.Next(',') {
			return nil, false
		}
	}
	if !s.Next(']') {
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

// fastNumber reads a JSON number that fits a float64.
func fastNumber(s *jsonscan.Scanner) (float64, bool) {
	tok, _, ok := s.Number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
