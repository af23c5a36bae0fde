package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// BuildBinary builds ./cmd/xmppgw once per test binary and returns the path
// of the executable, for tests that run the gateway as a process (to kill it
// with SIGKILL, check exit codes). The binary lives in a directory of
// os.TempDir() named after the process; it is small enough to leave behind.
func BuildBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "xmppgw-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "xmppgw")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/xmppgw")
		cmd.Dir = RepoRoot(t)
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("harness: go build ./cmd/xmppgw: %v\n%s", build.err, build.out)
	}
	return build.path
}
