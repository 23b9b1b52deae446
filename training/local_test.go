package training

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelfleet/modelfleet"
)

func newLocal(t *testing.T) (*Local, string) {
	t.Helper()
	root := t.TempDir()
	data := filepath.Join(root, "data dir's") // a space and a quote: the paths are quoted
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "a.csv"), []byte("x,label\n1,0\n2,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Local{Root: filepath.Join(root, "runs"), Grace: 2 * time.Second}, data
}

func job(id, data, command string) modelfleet.TrainingJob {
	return modelfleet.TrainingJob{ID: id, Model: "bearing-failure", Command: command, Data: data, Compute: modelfleet.ComputeLocal}
}

// wait polls Status until the run is terminal.
func wait(t *testing.T, r modelfleet.Trainer, ref modelfleet.RunRef) modelfleet.JobStatus {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := r.Status(context.Background(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if st.Terminal {
			return st
		}
	}
	t.Fatalf("run %s did not finish", ref.ID)
	return modelfleet.JobStatus{}
}

// The job contract: the data folder and the output folder reach the command
// as placeholders and as environment variables; it writes model.txt and
// metrics.json; its output is logged.
func TestLocalRunsTheJobContract(t *testing.T) {
	l, data := newLocal(t)
	var exited []modelfleet.JobStatus
	var mu sync.Mutex
	l.OnExit = func(_ modelfleet.RunRef, st modelfleet.JobStatus) {
		mu.Lock()
		exited = append(exited, st)
		mu.Unlock()
	}
	cmd := `test "$MODELFLEET_TRAINING_DATA" = ${{inputs.data}} && test "$MODELFLEET_TRAINING_OUTPUT" = ${{outputs.model}} && ` +
		`cat ${{inputs.data}}/*.csv > ${{outputs.model}}/model.txt && echo '{"rows": 2, "auc": 0.93, "note": "x"}' > "$MODELFLEET_TRAINING_OUTPUT/metrics.json" && echo trained $MODELFLEET_TRAINING_JOB`
	ref, err := l.Submit(context.Background(), job("job-1", data, cmd))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Kind != modelfleet.ComputeLocal || ref.ID != "job-1" || ref.OutputDir != filepath.Join(l.Root, "job-1", "output") {
		t.Errorf("ref = %+v", ref)
	}
	st := wait(t, l, ref)
	if st.Status != modelfleet.JobCompleted || st.Metrics["auc"] != 0.93 || st.Metrics["rows"] != 2 || len(st.Metrics) != 2 {
		t.Fatalf("status = %+v, want completed with metrics auc and rows", st)
	}
	out, err := l.Outputs(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, modelfleet.JobModelFile)); string(b) != "x,label\n1,0\n2,1\n" {
		t.Errorf("model.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(l.Root, "job-1", "train.log")); !strings.Contains(string(b), "trained job-1") {
		t.Errorf("log = %q, want the command's output", b)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(exited)
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exited) != 1 || exited[0].Status != modelfleet.JobCompleted {
		t.Errorf("OnExit saw %+v, want one completed", exited)
	}
}

// Submitting the same job again, concurrently, or from another runner on the
// same root (a restarted worker) starts nothing new.
func TestLocalSubmitIsIdempotent(t *testing.T) {
	l, data := newLocal(t)
	counter := filepath.Join(t.TempDir(), "starts")
	cmd := "echo started >> " + shellQuote(counter) + " && echo m > ${{outputs.model}}/model.txt"
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Submit(context.Background(), job("job-1", data, cmd)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	other := &Local{Root: l.Root}
	ref, err := other.Submit(context.Background(), job("job-1", data, cmd))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, other, ref); st.Status != modelfleet.JobCompleted {
		t.Fatalf("status = %+v", st)
	}
	if _, err := l.Submit(context.Background(), job("job-1", data, cmd)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(counter); strings.Count(string(b), "started") != 1 {
		t.Errorf("the command ran %d times, want once", strings.Count(string(b), "started"))
	}
}

func TestLocalFailures(t *testing.T) {
	l, data := newLocal(t)
	ctx := context.Background()
	cases := []struct{ id, cmd, want string }{
		{"exit-3", "echo 'reading data' && echo 'no label column' >&2 && exit 3", "exit code 3: reading data | no label column"},
		{"no-model", "echo done", "wrote no model.txt"},
		{"not-found", "/nonexistent/trainer", "exit code 127"},
	}
	for _, c := range cases {
		ref, err := l.Submit(ctx, job(c.id, data, c.cmd))
		if err != nil {
			t.Fatal(err)
		}
		st := wait(t, l, ref)
		if st.Status != modelfleet.JobFailed || !strings.Contains(st.Message, c.want) {
			t.Errorf("%s: status %+v, want failed with %q", c.id, st, c.want)
		}
	}
	// Invalid jobs are refused before anything is created.
	for _, j := range []modelfleet.TrainingJob{
		job("bad id", data, "true"),
		job("job-x", filepath.Join(data, "missing"), "true"),
		job("job-y", data, " "),
		{ID: "job-z", Model: "m", Command: "true", Data: data, Compute: modelfleet.ComputeAzureMLCloud},
	} {
		if _, err := l.Submit(ctx, j); modelfleet.ErrorCode(err) != modelfleet.EINVALID {
			t.Errorf("submit %+v: %v, want invalid", j, err)
		}
	}
	if _, err := l.Status(ctx, modelfleet.RunRef{ID: "never-submitted"}); !errors.Is(err, modelfleet.ErrRunNotFound) {
		t.Errorf("status of an unknown run: %v, want not found", err)
	}
	if err := l.Cancel(ctx, modelfleet.RunRef{ID: "never-submitted"}); err != nil {
		t.Errorf("cancel of an unknown run: %v", err)
	}
}

// Cancel stops the whole process group, also from another runner instance
// (the worker restarted meanwhile); the run reports Canceled.
func TestLocalCancelKillsTheProcessGroup(t *testing.T) {
	l, data := newLocal(t)
	ctx := context.Background()
	pidFile := filepath.Join(t.TempDir(), "child")
	// A child that ignores SIGTERM: only the SIGKILL after the grace stops it.
	cmd := "sh -c 'trap \"\" TERM; echo $$ > " + pidFile + "; while true; do sleep 0.05; done' & wait"
	ref, err := l.Submit(ctx, job("long", data, cmd))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for deadline := time.Now().Add(10 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if child == 0 {
		t.Fatal("the command did not start")
	}
	restarted := &Local{Root: l.Root, Grace: 300 * time.Millisecond}
	if st, err := restarted.Status(ctx, ref); err != nil || st.Status != modelfleet.JobRunning {
		t.Fatalf("status from another runner = %+v, %v; want running", st, err)
	}
	if err := restarted.Cancel(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, l, ref); st.Status != modelfleet.JobCanceled {
		t.Errorf("status = %+v, want canceled", st)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(child, 0) != nil {
			break
		}
	}
	if syscall.Kill(child, 0) == nil {
		t.Errorf("child %d still runs after cancel", child)
	}
	if err := l.Cancel(ctx, ref); err != nil {
		t.Errorf("second cancel: %v", err)
	}
	// A cancelled job is never started again.
	if _, err := l.Submit(ctx, job("long", data, cmd)); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.Status(ctx, ref); st.Status != modelfleet.JobCanceled {
		t.Errorf("after resubmit: %+v", st)
	}
}

func TestLocalTimeoutAndLostProcess(t *testing.T) {
	l, data := newLocal(t)
	ctx := context.Background()
	j := job("slow", data, "sleep 30")
	j.Timeout = 200 * time.Millisecond
	ref, err := l.Submit(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, l, ref); st.Status != modelfleet.JobFailed || !strings.Contains(st.Message, "timed out after 200ms") {
		t.Errorf("status = %+v, want failed: timed out", st)
	}

	// The wrapper killed from outside (OOM killer, an operator): failed,
	// with what the runner saw.
	ref, err = l.Submit(ctx, job("killed", data, "sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(ref.Dir, "pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, l, ref); st.Status != modelfleet.JobFailed || !strings.Contains(st.Message, "killed") {
		t.Errorf("status = %+v, want failed: killed", st)
	}

	// A run folder whose process is gone without an exit file (the machine
	// restarted): failed, not running forever.
	dir := filepath.Join(l.Root, "orphan")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"submit.lock": "", "pid": "999999\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := l.Status(ctx, modelfleet.RunRef{ID: "orphan"}); err != nil || st.Status != modelfleet.JobFailed || !strings.Contains(st.Message, "without recording") {
		t.Errorf("orphan status = %+v, %v", st, err)
	}
}
