package validate

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Docker cannot run here, so the image is checked in two halves: the
// Dockerfile's shape, and its build stage's exact command run on this
// machine, whose output must be a static binary (what distroless/static and
// scratch need: no dynamic loader, no shared libraries).
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	src, err := os.ReadFile("../docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(src)
	stages := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(stages) != 2 || !strings.HasPrefix(stages[1][1], "gcr.io/distroless/static") {
		t.Fatalf("stages %v: want a build stage and distroless/static", stages)
	}
	if !regexp.MustCompile(`(?m)^USER 65532`).MatchString(df) {
		t.Error("the image does not run as non-root")
	}
	run := regexp.MustCompile(`(?s)RUN (CGO_ENABLED=0 GOOS=linux go build .*?)\n\n`).FindStringSubmatch(df)
	if run == nil {
		t.Fatal("no static go build in the Dockerfile")
	}
	if testing.Short() {
		t.Skip("building the binary takes a while")
	}
	out := filepath.Join(t.TempDir(), "modelfleet")
	cmdline := strings.ReplaceAll(run[1], "\\\n", " ")
	cmdline = strings.Replace(cmdline, "/out/modelfleet", out, 1)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary asks for a dynamic loader")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("the binary links %v", libs)
	}
	st, _ := os.Stat(out)
	t.Logf("static binary: %.1f MiB (the image adds distroless/static's ~2 MiB)", float64(st.Size())/(1<<20))
}
