package agent

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs the server in a process group of its own, killed
// whole on stop (a server that forks workers leaves none behind), and
// killed with the agent should the agent die first.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
}
