package modelfleet

import (
	"strings"
	"testing"
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
