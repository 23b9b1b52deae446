package jsonscan

import "testing"

func TestScanner(t *testing.T) {
	s := Scanner{B: []byte(" { \"a-b c\" : -0.5e+3 , \"x\":[0,12] } ")}
	if !s.Next('{') {
		t.Fatal("no {")
	}
	if name, ok := s.String(); !ok || string(name) != "a-b c" || !s.Next(':') {
		t.Fatalf("name %q %v", name, ok)
	}
	if tok, integer, ok := s.Number(); !ok || integer || string(tok) != "-0.5e+3" {
		t.Fatalf("number %q %v %v", tok, integer, ok)
	}
	if !s.Next(',') || s.Peek() != '"' {
		t.Fatal("no , then a string")
	}
	s.String()
	s.Next(':')
	s.Next('[')
	for _, want := range []string{"0", "12"} {
		if tok, integer, ok := s.Number(); !ok || !integer || string(tok) != want {
			t.Fatalf("number %q %v %v, want %s", tok, integer, ok, want)
		}
		s.Next(',')
	}
	if !s.Next(']') || !s.Next('}') || !s.End() {
		t.Fatal("not at the end")
	}
	for _, bad := range []string{`"a\"b"`, "\"a\x7fb\"", `"é"`, `"open`} {
		if _, ok := (&Scanner{B: []byte(bad)}).String(); ok {
			t.Errorf("String read %q", bad)
		}
	}
	for _, bad := range []string{"-", "+1", ".5", "1.", "1e", "1e+", "x"} {
		if _, _, ok := (&Scanner{B: []byte(bad)}).Number(); ok {
			t.Errorf("Number read %q", bad)
		}
	}
	if s := (Scanner{B: []byte("01")}); true {
		if tok, _, ok := s.Number(); !ok || string(tok) != "0" || s.End() {
			t.Errorf("01: %q %v, then at the end %v: want 0 and the 1 left", tok, ok, s.End())
		}
	}
}
