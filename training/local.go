package training

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/internal/flock"
)

// Local runs training commands as subprocesses of the worker: the embedded
// stack's compute. Each run lives in its own folder under Root:
//
//	<Root>/<job ID>/
//	  job.json     the job as submitted
//	  submit.lock  held (flock) while the process is being started
//	  pid          the process (group) ID, once started
//	  train.log    the command's stdout and stderr
//	  output/      the output folder: model.txt, metrics.json
//	  exit         the command's exit code, once it ended
//	  canceled     present once the run was cancelled
//	  timed-out    present once the run exceeded the job's timeout
//
// The command runs under /bin/sh in its own process group (Cancel stops the
// whole group) through a small shell wrapper that records its exit code in
// the run folder, so a run that outlives a worker restart still reports how
// it ended. Submit starts a job ID at most once, even across processes
// sharing Root.
type Local struct {
	// Root holds the run folders (e.g. $MODELFLEET_DATA_DIR/training/runs).
	Root string
	// Dir is the commands' working directory; empty: the run folder.
	Dir string
	// Grace is how long Cancel waits after SIGTERM before SIGKILL
	// (default 10 s).
	Grace time.Duration
	// OnExit, if set, is called when a process this runner started ends,
	// with its final status: the place to signal the workflow at once
	// instead of waiting for its next poll.
	OnExit func(modelfleet.RunRef, modelfleet.JobStatus)
	Logger *slog.Logger
	// PassEnv names variables of the worker's environment the command also
	// gets, beside BaseEnv and the job's own Env. The command never
	// inherits the worker's environment whole: it holds the Temporal API
	// key, the GitOps token, the Service Bus connection string.
	PassEnv []string

	mu sync.Mutex // serialises Submit within the process; flock across processes
}

var _ interface {
	modelfleet.Trainer
	modelfleet.TrainingOutputs
} = (*Local)(nil)

// Files of a run folder.
const (
	localJob      = "job.json"
	localLock     = "submit.lock"
	localPID      = "pid"
	localLog      = "train.log"
	localOutput   = "output"
	localExit     = "exit"
	localCanceled = "canceled"
	localTimedOut = "timed-out"
)

func (l *Local) dir(id string) string { return filepath.Join(l.Root, id) }

func (l *Local) ref(job modelfleet.TrainingJob) modelfleet.RunRef {
	d := l.dir(job.ID)
	return modelfleet.RunRef{Kind: modelfleet.ComputeLocal, ID: job.ID, Model: job.Model, Dir: d, OutputDir: filepath.Join(d, localOutput)}
}

// Submit starts the job's command unless this job ID was started before.
func (l *Local) Submit(ctx context.Context, job modelfleet.TrainingJob) (modelfleet.RunRef, error) {
	if err := job.Validate(); err != nil {
		return modelfleet.RunRef{}, err
	}
	if job.Compute != "" && job.Compute != modelfleet.ComputeLocal {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "job %s: the local runner cannot run on compute %q", job.ID, job.Compute)
	}
	if l.Root == "" {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "local runner: no root folder configured")
	}
	data, err := filepath.Abs(job.Data)
	if err != nil {
		return modelfleet.RunRef{}, err
	}
	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		return modelfleet.RunRef{}, modelfleet.Errorf(modelfleet.EINVALID, "job %s: training data folder %q does not exist", job.ID, job.Data)
	}
	ref := l.ref(job)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(ref.Dir, localOutput), 0o755); err != nil {
		return modelfleet.RunRef{}, fmt.Errorf("local runner: %w", err)
	}
	unlock, err := flock.Lock(filepath.Join(ref.Dir, localLock), 0o644)
	if err != nil {
		return modelfleet.RunRef{}, fmt.Errorf("local runner: lock %s: %w", job.ID, err)
	}
	defer unlock()
	for _, f := range []string{localPID, localExit, localCanceled} {
		if exists(filepath.Join(ref.Dir, f)) {
			return ref, nil // started (or cancelled) before: start nothing
		}
	}
	job.Data = data
	raw, _ := json.MarshalIndent(struct {
		modelfleet.TrainingJob
		SubmittedAt time.Time `json:"submittedAt"`
	}{job, time.Now().UTC()}, "", "  ")
	if err := writeAtomic(filepath.Join(ref.Dir, localJob), raw); err != nil {
		return modelfleet.RunRef{}, fmt.Errorf("local runner: %w", err)
	}
	if err := l.start(job, ref); err != nil {
		return modelfleet.RunRef{}, err
	}
	return ref, nil
}

// BaseEnv are the variables of the worker's environment every command gets:
// what a shell, Python and its virtual environments need to start, nothing
// that carries a credential.
var BaseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}

// environ is the command's environment from the worker's: BaseEnv and
// PassEnv only.
func (l *Local) environ() []string {
	var env []string
	for _, k := range append(slices.Clone(BaseEnv), l.PassEnv...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// wrapper runs the command ($1) in a child shell and records its exit code
// in the file $2, atomically, before exiting with it. $0 names the process
// after the job, which is how Status recognises it after a restart.
const wrapper = `/bin/sh -c "$1"; code=$?; echo "$code" > "$2.tmp" && mv "$2.tmp" "$2"; exit "$code"`

func (l *Local) start(job modelfleet.TrainingJob, ref modelfleet.RunRef) error {
	logf, err := os.OpenFile(filepath.Join(ref.Dir, localLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("local runner: %w", err)
	}
	command := strings.NewReplacer(DataPlaceholder, shellQuote(job.Data), OutputPlaceholder, shellQuote(ref.OutputDir)).Replace(job.Command)
	cmd := exec.Command("/bin/sh", "-c", wrapper, processName(job.ID), command, filepath.Join(ref.Dir, localExit))
	cmd.Dir = l.Dir
	if cmd.Dir == "" {
		cmd.Dir = ref.Dir
	}
	cmd.Env = append(l.environ(), EnvData+"="+job.Data, EnvOutput+"="+ref.OutputDir, EnvJob+"="+job.ID)
	for k, v := range job.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	fmt.Fprintf(logf, "modelfleet: %s starting job %s: %s\n", time.Now().UTC().Format(time.RFC3339), job.ID, command)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "modelfleet: could not start: %v\n", err)
		logf.Close()
		_ = writeAtomic(filepath.Join(ref.Dir, localExit), []byte("127 could not start: "+err.Error()+"\n"))
		return nil // recorded as a failed run: Status says why
	}
	if err := writeAtomic(filepath.Join(ref.Dir, localPID), []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
		return fmt.Errorf("local runner: %w", err)
	}
	l.logger().Info("training started", "job", job.ID, "model", job.Model, "pid", cmd.Process.Pid, "dir", ref.Dir)
	var timer *time.Timer
	if job.Timeout > 0 {
		timer = time.AfterFunc(job.Timeout, func() {
			_ = writeAtomic(filepath.Join(ref.Dir, localTimedOut), []byte(job.Timeout.String()+"\n"))
			l.stop(cmd.Process.Pid)
		})
	}
	go func() {
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		logf.Close()
		exit := filepath.Join(ref.Dir, localExit)
		if !exists(exit) {
			// The wrapper itself was killed: record what Wait saw.
			_ = writeAtomic(exit, []byte(fmt.Sprintf("%d %v\n", cmd.ProcessState.ExitCode(), err)))
		}
		st, serr := l.Status(context.Background(), ref)
		l.logger().Info("training ended", "job", job.ID, "status", st.Status, "message", st.Message)
		if l.OnExit != nil && serr == nil {
			l.OnExit(ref, st)
		}
	}()
	return nil
}

// runDir is the run's folder under Root (not ref.Dir, which names the
// folder of the worker that submitted it).
func (l *Local) runDir(ref modelfleet.RunRef) (string, error) {
	if !modelfleet.ValidJobID(ref.ID) || l.Root == "" {
		return "", fmt.Errorf("local run %q: %w", ref.ID, modelfleet.ErrRunNotFound)
	}
	return l.dir(ref.ID), nil
}

// Status reads the run folder.
func (l *Local) Status(_ context.Context, ref modelfleet.RunRef) (modelfleet.JobStatus, error) {
	d, err := l.runDir(ref)
	if err != nil {
		return modelfleet.JobStatus{}, err
	}
	if !exists(filepath.Join(d, localLock)) {
		return modelfleet.JobStatus{}, fmt.Errorf("local run %s: %w", ref.ID, modelfleet.ErrRunNotFound)
	}
	if exists(filepath.Join(d, localCanceled)) {
		return modelfleet.JobStatus{Status: modelfleet.JobCanceled, Terminal: true, Message: "cancelled"}, nil
	}
	if b, err := os.ReadFile(filepath.Join(d, localTimedOut)); err == nil {
		return modelfleet.JobStatus{Status: modelfleet.JobFailed, Terminal: true, Message: "timed out after " + strings.TrimSpace(string(b))}, nil
	}
	if b, err := os.ReadFile(filepath.Join(d, localExit)); err == nil {
		return exitStatus(d, string(b)), nil
	}
	b, err := os.ReadFile(filepath.Join(d, localPID))
	if err != nil {
		return modelfleet.JobStatus{Status: modelfleet.JobNotStarted}, nil
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid, ref.ID) {
		return modelfleet.JobStatus{Status: modelfleet.JobRunning}, nil
	}
	// The exit file may have been written just now.
	if b, err := os.ReadFile(filepath.Join(d, localExit)); err == nil {
		return exitStatus(d, string(b)), nil
	}
	return modelfleet.JobStatus{Status: modelfleet.JobFailed, Terminal: true, Message: "the process ended without recording its exit code (killed, or the machine restarted)"}, nil
}

func exitStatus(dir, exit string) modelfleet.JobStatus {
	fields := strings.Fields(exit)
	code := -1
	if len(fields) > 0 {
		code, _ = strconv.Atoi(fields[0])
	}
	if code != 0 {
		msg := fmt.Sprintf("exit code %d", code)
		if len(fields) > 1 {
			msg += " (" + strings.Join(fields[1:], " ") + ")"
		}
		if tail := logTail(filepath.Join(dir, localLog)); tail != "" {
			msg += ": " + tail
		}
		return modelfleet.JobStatus{Status: modelfleet.JobFailed, Terminal: true, Message: msg}
	}
	out := filepath.Join(dir, localOutput)
	if !exists(filepath.Join(out, modelfleet.JobModelFile)) {
		return modelfleet.JobStatus{Status: modelfleet.JobFailed, Terminal: true, Message: "the command exited 0 but wrote no " + modelfleet.JobModelFile + " into its output folder"}
	}
	st := modelfleet.JobStatus{Status: modelfleet.JobCompleted, Terminal: true}
	st.Metrics, _ = modelfleet.ReadJobMetrics(filepath.Join(out, modelfleet.JobMetricsFile))
	return st
}

// Cancel stops the run's process group: SIGTERM, then SIGKILL after Grace.
// A run that has not started yet never starts.
func (l *Local) Cancel(_ context.Context, ref modelfleet.RunRef) error {
	d, err := l.runDir(ref)
	if err != nil {
		return nil
	}
	if !exists(filepath.Join(d, localLock)) || exists(filepath.Join(d, localExit)) {
		return nil // unknown or finished: nothing to stop
	}
	if err := writeAtomic(filepath.Join(d, localCanceled), []byte(time.Now().UTC().Format(time.RFC3339)+"\n")); err != nil {
		return fmt.Errorf("local runner: cancel %s: %w", ref.ID, err)
	}
	b, err := os.ReadFile(filepath.Join(d, localPID))
	if err != nil {
		return nil // not started; Submit will not start it now
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if alive(pid, ref.ID) {
		l.logger().Info("training cancelled", "job", ref.ID, "pid", pid)
		l.stop(pid)
	}
	return nil
}

// stop sends SIGTERM to the process group, then SIGKILL if it is still
// there after Grace.
func (l *Local) stop(pid int) {
	if pid <= 1 {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := l.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(-pid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// Outputs returns the run's output folder.
func (l *Local) Outputs(_ context.Context, ref modelfleet.RunRef) (string, error) {
	d, err := l.runDir(ref)
	if err != nil {
		return "", err
	}
	d = filepath.Join(d, localOutput)
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("local run %s: output folder: %w", ref.ID, modelfleet.ErrRunNotFound)
	}
	return d, nil
}

func (l *Local) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func processName(id string) string { return "modelfleet-train-" + id }

// alive reports whether pid is the wrapper of job id: on Linux its command
// line must name the job (a reused pid is not mistaken for it).
func alive(pid int, id string) bool {
	if pid <= 1 {
		return false
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(b) > 0 {
		return strings.Contains(string(b), processName(id)+"\x00")
	} else if err == nil {
		// Empty: the process is in the middle of exec (its arguments are
		// not set up yet) or a zombie about to be reaped.
		return syscall.Kill(pid, 0) == nil
	} else if _, statErr := os.Stat("/proc/self"); statErr == nil {
		return false // procfs exists and the process does not
	}
	return syscall.Kill(pid, 0) == nil
}

func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	var lines []string
	for _, ln := range strings.Split(string(b), "\n") {
		if ln = strings.TrimSpace(ln); ln != "" && !strings.HasPrefix(ln, "modelfleet: ") {
			lines = append(lines, ln)
		}
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeAtomic writes a file through a temporary file and a rename, readable
// by the worker's user alone (job.json holds the job's environment).
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
