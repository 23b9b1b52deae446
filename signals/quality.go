package signals

import (
	"bytes"
	"encoding/json"
)

// classify says, for each named feature of a rejected request body, whether
// it was missing or null (nulls) or present but not a number (typeErrs). It
// reads the body forms inference.Vector accepts: a feature object or a
// positional array, bare or under "features". A body that is not JSON, or
// not one of those forms, flags nothing: the request was malformed as a
// whole, which Rejected counts, and no feature is to blame.
func classify(names []string, body []byte) (nulls, typeErrs []bool) {
	nulls, typeErrs = make([]bool, len(names)), make([]bool, len(names))
	var top any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if dec.Decode(&top) != nil {
		return nulls, typeErrs
	}
	if obj, ok := top.(map[string]any); ok {
		if inner, ok := obj["features"]; ok && len(obj) == 1 {
			switch inner.(type) {
			case map[string]any, []any:
				top = inner
			}
		}
	}
	check := func(i int, v any) {
		switch v.(type) {
		case json.Number:
		case nil:
			nulls[i] = true // missing or null alike: Azure's null value rate
		default:
			typeErrs[i] = true
		}
	}
	switch t := top.(type) {
	case map[string]any:
		for i, n := range names {
			check(i, t[n])
		}
	case []any:
		for i := range names {
			var v any
			if i < len(t) {
				v = t[i]
			}
			check(i, v)
		}
	}
	return nulls, typeErrs
}
