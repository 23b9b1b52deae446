package main

import (
	"strings"
	"testing"
)

// The edge agent takes no Temporal flags (a site holds no Temporal
// credential); every other command takes them, before or after its name.
func TestTemporalFlagsEverywhereButEdge(t *testing.T) {
	for _, args := range [][]string{
		{"--temporal-tls", "release", "list"},
		{"--temporal-address", "t:7233", "--namespace", "prod", "site", "list"},
		{"release", "status", "m", "1", "--namespace", "prod", "--temporal-tls"},
		{"gateway", "--temporal-tls-ca", "ca.pem", "--temporal-tls-server-name", "t.internal"},
		{"worker", "--temporal-address", "t:7233"},
		{"workload", "release", "w:1", "--temporal-tls-cert", "c.pem", "--temporal-tls-key", "k.pem"},
	} {
		root := newRoot()
		c, rest, err := root.Find(args)
		if err != nil || c == root {
			t.Errorf("%q: found %v, %v", args, c.Name(), err)
			continue
		}
		if err := c.ParseFlags(rest); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"edge", "--site", "s", "--temporal-address", "t:7233"},
		{"--temporal-tls", "edge", "--site", "s"},
		{"edge", "--namespace", "prod"},
		{"edge", "--temporal-tls-cert", "c.pem"},
	} {
		root := newRoot()
		c, rest, err := root.Find(args)
		if err != nil || c.Name() != "edge" {
			t.Errorf("%q: found %v, %v", args, c.Name(), err)
			continue
		}
		if err := c.ParseFlags(rest); err == nil || !strings.Contains(err.Error(), "unknown flag") {
			t.Errorf("%q: %v, want an unknown flag", args, err)
		}
	}
	root := newRoot()
	edge, _, _ := root.Find([]string{"edge"})
	_ = edge.ParseFlags(nil)
	for _, name := range []string{"temporal-address", "namespace", "temporal-tls", "temporal-tls-ca", "temporal-tls-cert", "temporal-tls-key", "temporal-tls-server-name"} {
		if edge.Flags().Lookup(name) != nil {
			t.Errorf("edge takes --%s", name)
		}
	}
}
