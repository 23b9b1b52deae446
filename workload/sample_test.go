package workload

import (
	"strings"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet/workload/spec"
)

func TestParseSample(t *testing.T) {
	m := testManifest("1", 1)
	in := &m.Input
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ok := func(payload string) *Sample {
		t.Helper()
		s, rj := ParseSample(in, "t", []byte(payload), now)
		if rj != nil {
			t.Fatalf("%s: %v", payload, rj)
		}
		return s
	}
	s := ok(`{"machine":"m1","ts":"2026-05-01T12:00:01.5Z","seq":7,"x":12.5,"extra":{"ignored":true}}`)
	if s.Machine != "m1" || !s.HasSeq || s.Seq != 7 || s.Values["x"] != 12.5 || !s.Time.Equal(now.Add(1500*time.Millisecond)) {
		t.Errorf("sample %+v", s)
	}
	if s := ok(`{"machine":"m1","ts":1777636800000,"x":0}`); !s.Time.Equal(now) || s.HasSeq {
		t.Errorf("unix ms sample %+v", s)
	}
	for _, c := range []struct{ payload, reason, msg string }{
		{`not json`, ReasonMalformed, "not a JSON object"},
		{`[1,2]`, ReasonMalformed, "not a JSON object"},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":1,"x":2}`, ReasonMalformed, `duplicate field "x"`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":1} {}`, ReasonMalformed, "data after"},
		{`{"ts":"2026-05-01T12:00:00Z","x":1}`, ReasonMissingField, `"machine"`},
		{`{"machine":"m1","x":1}`, ReasonMissingField, `"ts"`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z"}`, ReasonMissingField, `field "x" is missing`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":null}`, ReasonMissingField, `field "x" is missing`},
		{`{"machine":7,"ts":"2026-05-01T12:00:00Z","x":1}`, ReasonBadField, `"machine"`},
		{`{"machine":"m1","ts":"yesterday","x":1}`, ReasonBadField, "RFC 3339"},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":"1"}`, ReasonBadField, `field "x" must be a number`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","seq":1.5,"x":1}`, ReasonBadField, `"seq"`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":1e999}`, ReasonBadField, `field "x"`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":100.5}`, ReasonOutOfRange, `field "x" = 100.5 is outside [0, 100] mm/s`},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":-1}`, ReasonOutOfRange, "outside"},
		{`{"machine":"m1","ts":"2026-05-01T11:58:59Z","x":1}`, ReasonClockSkew, "from the site's clock"},
		{`{"machine":"m1","ts":"2026-05-01T12:01:01Z","x":1}`, ReasonClockSkew, "more than 1m0s"},
		{`{"machine":"m1","ts":"2026-05-01T12:00:00Z","x":1,"pad":"` + strings.Repeat("a", spec.DefaultMaxBytes) + `"}`, ReasonTooLarge, "bytes"},
		{"\xff", ReasonMalformed, "UTF-8"},
	} {
		_, rj := ParseSample(in, "t", []byte(c.payload), now)
		if rj == nil || rj.Reason != c.reason || !strings.Contains(rj.Message, c.msg) {
			t.Errorf("%.60s: got %v, want %s containing %q", c.payload, rj, c.reason, c.msg)
		}
	}
}

// FuzzParseSample: any payload yields a sample or a reason from the closed
// set, never a panic.
func FuzzParseSample(f *testing.F) {
	for _, s := range []string{
		`{"machine":"m1","ts":"2026-05-01T12:00:00Z","seq":1,"x":5}`,
		`{"machine":"m1","ts":1777636800000,"x":5}`,
		`{"machine":"m1","x":`, `[]`, `{"machine":null}`, `{"a":{"b":[1,2,{"c":null}]}}`, "\x00",
	} {
		f.Add([]byte(s))
	}
	m := testManifest("1", 1)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	reasons := map[string]bool{ReasonMalformed: true, ReasonTooLarge: true, ReasonMissingField: true,
		ReasonBadField: true, ReasonOutOfRange: true, ReasonClockSkew: true}
	f.Fuzz(func(t *testing.T, payload []byte) {
		s, rj := ParseSample(&m.Input, "t", payload, now)
		switch {
		case rj != nil && (s != nil || !reasons[rj.Reason] || rj.Message == ""):
			t.Fatalf("reject %+v with sample %v", rj, s)
		case rj == nil && (s == nil || s.Machine == "" || s.Values["x"] < 0 || s.Values["x"] > 100):
			t.Fatalf("accepted %q as %+v", payload, s)
		}
	})
}
