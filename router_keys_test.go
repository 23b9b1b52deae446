package modelfleet

import (
	"reflect"
	"strings"
	"testing"
)

func TestAPIKeysWithAndValidate(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	var k *APIKeys
	k = k.With("m", []string{a})
	k = k.With("", []string{b})
	want := &APIKeys{SHA256: []string{b}, Models: map[string]KeyHashes{"m": {SHA256: []string{a}}}}
	if !reflect.DeepEqual(k, want) {
		t.Fatalf("With = %+v, want %+v", k, want)
	}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := k.With("m", nil).With("", nil); got != nil {
		t.Errorf("every scope removed: %+v, want nil", got)
	}
	if k.Models["m"].SHA256[0] != a {
		t.Error("With changed its receiver")
	}
	for name, bad := range map[string]*APIKeys{
		"upper case":  {SHA256: []string{strings.ToUpper(a)}},
		"short":       {SHA256: []string{a[:63]}},
		"twice":       {SHA256: []string{a, a}},
		"empty model": {Models: map[string]KeyHashes{"m": {}}},
		"bad model":   {Models: map[string]KeyHashes{"../m": {SHA256: []string{a}}}},
		"too many":    {SHA256: slicesOf(a, MaxAPIKeysPerScope+1)},
	} {
		if err := bad.Validate(); ErrorCode(err) != EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	for key, ok := range map[string]bool{
		"0123456789abcdef": true, "0123456789abcde": false, "0123456789 abcdef": false,
		"0123456789abcdef\x7f": false, strings.Repeat("k", MaxAPIKeyLen): true, strings.Repeat("k", MaxAPIKeyLen+1): false,
	} {
		if err := ValidateAPIKey(key); (err == nil) != ok {
			t.Errorf("ValidateAPIKey(%.20q…) = %v, want ok %v", key, err, ok)
		}
		if err := ValidateAPIKey(key); err != nil && strings.Contains(err.Error(), key) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

// slicesOf returns n distinct hashes (the first is h).
func slicesOf(h string, n int) []string {
	out := []string{h}
	for i := 1; i < n; i++ {
		out = append(out, HashAPIKey(strings.Repeat("x", i)))
	}
	return out
}
