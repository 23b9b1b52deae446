package app

import (
	"strings"
	"testing"
)

// A card's units name its features, and each is a short printable unit.
func TestModelCardUnits(t *testing.T) {
	c, err := ParseModelCard([]byte("features: [temperature_c, speed_rpm]\nunits: {temperature_c: degC, speed_rpm: rpm}\n"))
	if err != nil || c.Units["temperature_c"] != "degC" {
		t.Fatalf("%+v %v", c, err)
	}
	for card, want := range map[string]string{
		"features: [a]\nunits: {b: degC}\n":                            `units names feature "b", which is not one of its features`,
		"features: [a]\nunits: {a: \" degC\"}\n":                       "printable characters",
		"features: [a]\nunits: {a: \"\"}\n":                            "printable characters",
		"features: [a]\nunits: {a: " + strings.Repeat("m", 40) + "}\n": "printable characters",
	} {
		if _, err := ParseModelCard([]byte(card)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", card, err, want)
		}
	}
}
