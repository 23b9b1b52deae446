package training

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelfleet/modelfleet"
)

// The command gets an explicit environment: the job contract, the job's
// own variables and BaseEnv, never the worker's credentials; the run
// folder's job.json is readable by the worker's user alone.
func TestLocalCommandGetsAnExplicitEnvironment(t *testing.T) {
	t.Setenv("MODELFLEET_TEMPORAL_API_KEY", "temporal-secret")
	t.Setenv("SERVICEBUS_CONNECTION_STRING", "sb-secret")
	t.Setenv("PASSED_ON", "yes")
	l, data := newLocal(t)
	l.PassEnv = []string{"PASSED_ON"}
	j := job("env-1", data, `env > "$`+EnvOutput+`/env.txt"; echo 'tree' > "$`+EnvOutput+`/model.txt"`)
	j.Env = map[string]string{"JOB_VAR": "1"}
	ref, err := l.Submit(t.Context(), j)
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, l, ref); st.Status != modelfleet.JobCompleted {
		t.Fatalf("run %+v", st)
	}
	b, err := os.ReadFile(filepath.Join(ref.OutputDir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, secret := range []string{"temporal-secret", "sb-secret"} {
		if strings.Contains(env, secret) {
			t.Errorf("the command inherited the worker's %q", secret)
		}
	}
	for _, want := range []string{"PASSED_ON=yes", "JOB_VAR=1", "PATH=", EnvData + "="} {
		if !strings.Contains(env, want) {
			t.Errorf("the command's environment lacks %s", want)
		}
	}
	fi, err := os.Stat(filepath.Join(ref.Dir, "job.json"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("job.json mode %o, want 600", perm)
	}
}
