package app

import (
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

func TestModelCardServer(t *testing.T) {
	c, err := ParseModelCard([]byte(`format: oip
features: [vibration_rms_mm_s, temperature_c]
server:
  name: triton
  model: bearing
  task: multiclass
  classes: 3
  args: ["--model-repository={model_dir}", "--http-port={port}"]
`))
	if err != nil {
		t.Fatal(err)
	}
	m := modelfleet.Model{ModelRef: modelfleet.ModelRef{Name: "m", Version: "1"}, Format: c.Format, Digest: "sha256:" + strings.Repeat("0", 64),
		Properties: map[string]string{modelfleet.PropServer: c.ServerProperty()}}
	s, err := modelfleet.ServerOf(&m)
	if err != nil || !s.Equal(c.Server) || s.Classes != 3 || len(s.Args) != 2 {
		t.Fatalf("the card's server as a property: %+v %v", s, err)
	}
	for name, c := range map[string]struct{ card, want string }{
		"server without oip": {"format: xgboost\nserver: {name: t, model: m, task: binary}\n", "go together"},
		"oip without server": {"format: oip\n", "go together"},
		"bad server":         {"format: oip\nserver: {name: t, model: m, task: ranking}\n", "task"},
		"unknown key":        {"format: oip\nserver: {name: t, model: m, task: binary, command: sh}\n", "command"},
		"validation":         {"format: oip\nserver: {name: t, model: m, task: binary}\nvalidation: {data: v.csv, metric: auc, threshold: 0.8}\n", "no validation block"},
	} {
		if _, err := ParseModelCard([]byte(c.card)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
