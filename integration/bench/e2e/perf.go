package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// perfRecorder runs `perf record` on a process while a window is measured.
type perfRecorder struct {
	cmd  *exec.Cmd
	file string
}

// startPerf records pid into opt.PerfDir/<kind>-<run>.data; nil when
// profiling is off or perf cannot start (logged).
func (e *Env) startPerf(kind string, run, pid int) *perfRecorder {
	if e.opt.PerfDir == "" {
		return nil
	}
	file := filepath.Join(e.opt.PerfDir, fmt.Sprintf("%s-%d.data", kind, run))
	cmd := exec.Command("perf", "record", "-q", "-F", "999", "-g", "-p", fmt.Sprint(pid), "-o", file)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		e.opt.Logf("perf: %v", err)
		return nil
	}
	time.Sleep(100 * time.Millisecond) // let perf attach
	return &perfRecorder{cmd: cmd, file: file}
}

func (p *perfRecorder) stop(e *Env) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	e.opt.Logf("perf profile: %s (perf report -i %s --no-children)", p.file, p.file)
}
