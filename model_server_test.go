package modelfleet

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

func TestModelServerValidate(t *testing.T) {
	ok := ModelServer{Name: "triton", Model: "bearing", Args: []string{"--model-repository={model_dir}", "--http-port={port}"}, Task: TaskBinary}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid server: %v", err)
	}
	for name, c := range map[string]struct {
		edit func(*ModelServer)
		want string
	}{
		"no name":          {func(s *ModelServer) { s.Name = "" }, "model server name"},
		"bad model":        {func(s *ModelServer) { s.Model = "../etc" }, "model \"../etc\" is invalid"},
		"model in url":     {func(s *ModelServer) { s.Model = "a/b" }, "is invalid"},
		"other braces":     {func(s *ModelServer) { s.Args = []string{"--x={home}"} }, "placeholder other than"},
		"nul":              {func(s *ModelServer) { s.Args = []string{"a\x00b"} }, "NUL"},
		"long arg":         {func(s *ModelServer) { s.Args = []string{strings.Repeat("a", MaxServerArgLen+1)} }, "longer than"},
		"many args":        {func(s *ModelServer) { s.Args = make([]string, MaxServerArgs+1) }, "arguments are more than"},
		"task":             {func(s *ModelServer) { s.Task = "ranking" }, "task \"ranking\""},
		"multiclass few":   {func(s *ModelServer) { s.Task, s.Classes = TaskMulticlass, 2 }, "3 to"},
		"regression class": {func(s *ModelServer) { s.Task, s.Classes = TaskRegression, 4 }, "no classes"},
		"output":           {func(s *ModelServer) { s.Output = strings.Repeat("o", 300) }, "output name"},
	} {
		s := *ok.Clone()
		c.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
	if !ok.Equal(ok.Clone()) || ok.Equal(&ModelServer{Name: "triton"}) || (*ModelServer)(nil).Equal(&ok) {
		t.Error("Equal")
	}
}

func TestValidateSplitChecksTheServer(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	srv := &ModelServer{Name: "triton", Model: "m", Task: TaskRegression}
	for _, c := range []struct {
		v    DesiredVersion
		want string
	}{
		{DesiredVersion{Version: "1", Digest: d, Format: FormatOIP, Weight: 100, Server: srv}, ""},
		{DesiredVersion{Version: "1", Digest: d, Format: FormatOIP, Weight: 100}, "go together"},
		{DesiredVersion{Version: "1", Digest: d, Format: FormatXGBoost, Weight: 100, Server: srv}, "go together"},
		{DesiredVersion{Version: "1", Digest: d, Format: FormatOIP, Weight: 100, Server: &ModelServer{Name: "triton", Model: "m"}}, "task"},
	} {
		err := ValidateSplit([]DesiredVersion{c.v})
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.v, err, c.want)
		}
	}
}

// FuzzModelServer: any server reference a desired state carries validates
// or is refused, and a valid one has only the two placeholders.
func FuzzModelServer(f *testing.F) {
	f.Add("triton", "bearing", "--model-repository={model_dir}", "binary", 0)
	f.Add("x", "m", "{port}{", "multiclass", 3)
	f.Fuzz(func(t *testing.T, name, model, arg, task string, classes int) {
		s := &ModelServer{Name: name, Model: model, Args: []string{arg}, Task: task, Classes: classes}
		if s.Validate() != nil {
			return
		}
		if strings.ContainsAny(model, "/?#%") || len(arg) > MaxServerArgLen || s.NumClasses() < 1 {
			t.Fatalf("accepted %+v", s)
		}
	})
}

// TestReleaseStatementCoversTheServer: a site runs an external server only
// as the release signed it: another server, model, arguments or none are
// refused.
func TestReleaseStatementCoversTheServer(t *testing.T) {
	key := mustKey(t)
	trust := trustOf(key)
	srv := &ModelServer{Name: "triton", Model: "bearing", Args: []string{"--model-repository={model_dir}"}, Task: TaskBinary}
	st := NewReleaseStatement(testDigest, 10, ReleasePredicate{Model: "m", Version: "2", Format: FormatOIP, Features: []string{"a"}, Server: srv, Release: "release/m", SignedAt: time.Unix(0, 0).UTC()})
	env, err := SignStatement(st, []ed25519.PrivateKey{key})
	if err != nil {
		t.Fatal(err)
	}
	v := DesiredVersion{Version: "2", Digest: testDigest, Size: 10, Format: FormatOIP, Features: []string{"a"}, Weight: 100, Statement: env, Server: srv.Clone()}
	if _, err := trust.VerifyRelease(env, "m", v); err != nil {
		t.Fatalf("the signed server is refused: %v", err)
	}
	for name, edit := range map[string]func(*ModelServer){
		"other server": func(s *ModelServer) { s.Name = "mlserver" },
		"other model":  func(s *ModelServer) { s.Model = "other" },
		"other args":   func(s *ModelServer) { s.Args = []string{"--backend-directory=/tmp/x"} },
		"more args":    func(s *ModelServer) { s.Args = append(s.Args, "--x") },
		"other task":   func(s *ModelServer) { s.Task = TaskRegression },
	} {
		w := v
		w.Server = srv.Clone()
		edit(w.Server)
		if _, err := trust.VerifyRelease(env, "m", w); err == nil || !strings.Contains(err.Error(), "another model server") {
			t.Errorf("%s: %v", name, err)
		}
	}
	w := v
	w.Server = nil
	if _, err := trust.VerifyRelease(env, "m", w); err == nil {
		t.Error("a version without the signed server was accepted")
	}
}

func TestServerOf(t *testing.T) {
	m := &Model{ModelRef: ModelRef{Name: "m", Version: "1"}, Format: FormatOIP, Digest: testDigest,
		Properties: map[string]string{PropServer: `{"name":"triton","model":"bearing","task":"binary"}`}}
	s, err := ServerOf(m)
	if err != nil || s.Name != "triton" || s.Model != "bearing" {
		t.Fatalf("ServerOf = %+v, %v", s, err)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("an oip model with its server: %v", err)
	}
	for name, c := range map[string]struct {
		format, prop string
		want         string
	}{
		"no server":     {FormatOIP, "", "needs property"},
		"not json":      {FormatOIP, "{", "property modelfleet.server"},
		"unknown field": {FormatOIP, `{"name":"t","model":"m","task":"binary","command":"sh"}`, "unknown field"},
		"invalid":       {FormatOIP, `{"name":"t","model":"../m","task":"binary"}`, "invalid"},
		"built-in":      {FormatXGBoost, `{"name":"t","model":"m","task":"binary"}`, "only"},
	} {
		m := &Model{ModelRef: ModelRef{Name: "m", Version: "1"}, Format: c.format, Digest: testDigest, Properties: map[string]string{}}
		if c.prop != "" {
			m.Properties[PropServer] = c.prop
		}
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
