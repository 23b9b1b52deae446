package wfapi

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// The gateway imports this package to stay free of the workflows'
// dependencies (activities, drivers, training backends), so it may import
// only the standard library and the root package.
func TestImportsOnlyStdlibAndRoot(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no source files (%v)", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path := strings.Trim(imp.Path.Value, `"`)
			first, _, _ := strings.Cut(path, "/")
			if path != "github.com/modelfleet/modelfleet" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: only the standard library and the root package are allowed", f, path)
			}
		}
	}
}

// Names recorded in workflow histories, on the Temporal server and in
// operators' scripts: a change here breaks running workflows and callers.
func TestRecordedNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{ReleaseWorkflowName, "Release"},
		{RetrainWorkflowName, "Retrain"},
		{StatusQuery, "status"},
		{RetrainTriggerSignal, "trigger"},
		{RunStatusSignal, "run-status"},
		{RetrainWorkflowID("bearing-failure"), "retrain/bearing-failure"},
		{RetrainRunTag, "modelfleet.retrain"},
		{SearchAttrModel, "ModelfleetModel"},
		{SearchAttrVersion, "ModelfleetVersion"},
		{SearchAttrStage, "ModelfleetStage"},
		{SearchAttrSites, "ModelfleetSite"},
		{WorkloadReleaseWorkflowName, "WorkloadRelease"},
		{SearchAttrWorkload, "ModelfleetWorkload"},
		{strings.Join(Signals, ","), "approve,reject,pause,resume,abort,rollback,skip-bake"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
