package inference

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Vector turns a JSON request body into a feature row ordered by features,
// the model's declared feature names. It accepts
//
//	{"features": {"name": number, ...}}   {"name": number, ...}
//	{"features": [number, ...]}           [number, ...]
//
// The named forms need features; the positional forms need exactly
// len(features) numbers (any number when features is empty: Predict checks
// the length then). Anything else is an error naming the problem, because a
// silently zero-filled or misordered row would be scored without complaint.
// Callers bound the body's size.
func Vector(features []string, body []byte) ([]float64, error) {
	if row, ok := vectorFast(features, body); ok {
		return row, nil
	}
	return vectorSlow(features, body)
}

// vectorSlow is Vector for any body, and what says what is wrong with one.
func vectorSlow(features []string, body []byte) ([]float64, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid("request body is empty: want a JSON object of features")
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, invalid("request body is not valid JSON: %v", err)
	}
	switch raw[0] {
	case '[':
		return positional(features, raw)
	case '{':
		fields, err := objectFields(raw)
		if err != nil {
			return nil, err
		}
		inner, err := unwrap(fields)
		switch {
		case err != nil:
			return nil, err
		case inner == nil:
			return named(features, fields)
		case inner[0] == '[':
			return positional(features, inner)
		}
		if fields, err = objectFields(inner); err != nil {
			return nil, err
		}
		return named(features, fields)
	}
	return nil, invalid("request body must be a JSON object or array of features, got %s", kind(raw))
}

type field struct {
	name  string
	value json.RawMessage
}

// objectFields lists the fields of a valid JSON object in order, rejecting
// duplicates (encoding/json would silently keep the last one).
func objectFields(raw json.RawMessage) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, invalid("request body: %v", err)
	}
	var fields []field
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("request body: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, invalid("duplicate field %q", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("request body: field %q: %v", name, err)
		}
		fields = append(fields, field{name, v})
	}
	return fields, nil
}

// unwrap returns what fields wraps when it is {"features": {...} or [...]},
// and nil otherwise. A "features" field holding a number is a feature of
// that name, not a wrapper.
func unwrap(fields []field) (json.RawMessage, error) {
	for _, f := range fields {
		if f.name != "features" || (f.value[0] != '{' && f.value[0] != '[') {
			continue
		}
		for _, g := range fields {
			if g.name != "features" {
				return nil, invalid("unexpected field %q beside \"features\"", g.name)
			}
		}
		return f.value, nil
	}
	return nil, nil
}

// named orders the fields of a feature object by features.
func named(features []string, fields []field) ([]float64, error) {
	if len(features) == 0 {
		return nil, invalid("the model declares no feature names: send the features as a JSON array")
	}
	index := make(map[string]int, len(features))
	for i, name := range features {
		index[name] = i
	}
	row := make([]float64, len(features))
	set := make([]bool, len(features))
	for _, f := range fields {
		i, ok := index[f.name]
		if !ok {
			return nil, invalid("unknown feature %q", f.name)
		}
		var err error
		if row[i], err = number(strconv.Quote(f.name), f.value); err != nil {
			return nil, err
		}
		set[i] = true
	}
	for i, ok := range set {
		if !ok {
			return nil, invalid("missing feature %q", features[i])
		}
	}
	return row, nil
}

// positional reads a JSON array of numbers in model order.
func positional(features []string, raw json.RawMessage) ([]float64, error) {
	var values []json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return nil, invalid("request body: %v", err)
	}
	if len(features) > 0 && len(values) != len(features) {
		return nil, invalid("got %d features, want %d", len(values), len(features))
	}
	row := make([]float64, len(values))
	for i, v := range values {
		name := "at index " + strconv.Itoa(i)
		if len(features) > 0 {
			name = strconv.Quote(features[i])
		}
		var err error
		if row[i], err = number(name, v); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// number parses a valid JSON value as a number that fits a float64. label
// names the feature in errors: a quoted name or "at index 3".
func number(label string, v json.RawMessage) (float64, error) {
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return 0, invalid("feature %s must be a number, got %s", label, kind(v))
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, invalid("feature %s: %s is out of range", label, v)
	}
	return f, nil
}

// kind names the JSON type of a valid JSON value for error messages.
func kind(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
