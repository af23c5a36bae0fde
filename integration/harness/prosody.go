package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the Prosody process.
const (
	prosodyStartTimeout = 15 * time.Second
	prosodyStopTimeout  = 10 * time.Second
)

// ProsodyOptions shapes the Prosody of one test. The zero value is a server
// for "localhost" with the component "gw.localhost" and a random secret.
type ProsodyOptions struct {
	Domain          string            // default "localhost"
	ComponentDomain string            // default "gw.localhost"
	Secret          string            // default random
	Users           map[string]string // user -> password, registered after start
	LogLevel        string            // default "warn"
	Global          string            // extra Lua for the global section
	ComponentExtra  string            // extra Lua for the gateway's Component section (after the operators' snippet: it overrides it)
	Host            string            // extra Lua for the VirtualHost section
	// Command runs Prosody instead of "prosody" (its arguments follow),
	// e.g. under valgrind: {"valgrind", "--tool=callgrind", "lua5.4",
	// "/usr/bin/prosody"}.
	Command []string
}

// Prosody is a Prosody server run by one test. Its fields do not change
// across Stop and Start.
type Prosody struct {
	C2SAddr         string // 127.0.0.1:port of client connections
	ComponentAddr   string // 127.0.0.1:port of the component (XEP-0114) listener
	Domain          string // the VirtualHost, "localhost"
	ComponentDomain string // "gw.localhost"
	Secret          string // the component secret
	Dir             string // data_path, config, pidfile and log
	ConfigFile      string
	LogFile         string

	command []string // ProsodyOptions.Command

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *syncBuffer   // stdout and stderr of all runs
}

// StartProsody writes a config for a new Prosody into t.TempDir(), starts it,
// waits for its ports, registers opts.Users, and stops it when the test ends
// (logging its output and log file if the test failed).
func StartProsody(t testing.TB, opts ProsodyOptions) *Prosody {
	t.Helper()
	p, err := StartProsodyDir(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			p.logOutput(t)
		}
	})
	return p
}

// Start starts the server again after Stop or Kill, on the same ports and
// data directory, and waits for its ports. Starting a running server fails
// the test.
func (p *Prosody) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatal(err) // the cleanup of StartProsody logs Prosody's output
	}
}

var errPortTaken = errors.New("harness: prosody could not listen on its port")

func (p *Prosody) start() error {
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		return errors.New("harness: prosody already running")
	}
	logStart := int64(0)
	if fi, err := os.Stat(p.LogFile); err == nil {
		logStart = fi.Size()
	}
	argv := append(append([]string{}, p.command...), "--config", p.ConfigFile, "-F")
	if len(p.command) == 0 {
		argv = append([]string{"prosody"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	// Its own process group; killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("harness: start prosody: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(prosodyStartTimeout)
	for _, addr := range []string{p.C2SAddr, p.ComponentAddr} {
		for WaitTCP(addr, 100*time.Millisecond) != nil {
			select {
			case <-done:
				p.stop(syscall.SIGKILL)
				return fmt.Errorf("harness: prosody exited during start: %v", cmd.ProcessState)
			default:
			}
			if time.Now().After(deadline) {
				p.stop(syscall.SIGKILL)
				return fmt.Errorf("harness: prosody did not open %s within %s; its output:\n%s\nits log:\n%s", addr, prosodyStartTimeout, p.out.String(), fileTail(p.LogFile, 4096))
			}
		}
	}
	// Reachable ports may belong to someone else: check that Prosody
	// opened them.
	if b, err := os.ReadFile(p.LogFile); err == nil && int64(len(b)) >= logStart {
		if i := bytes.Index(b[logStart:], []byte("Failed to open server port")); i >= 0 {
			line := b[logStart+int64(i):]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			p.stop(syscall.SIGKILL)
			return fmt.Errorf("%w: %s", errPortTaken, line)
		}
	}
	return nil
}

// fileTail returns the last n bytes of the file at path, or why it cannot.
func fileTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), n)
}

// Stop stops the server gracefully (SIGTERM, SIGKILL after a timeout) and
// waits until it has exited. Its data stays; Start runs it again.
func (p *Prosody) Stop(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Error(err)
	}
}

// Kill stops the server with SIGKILL: no goodbye to the sessions.
func (p *Prosody) Kill(t testing.TB) {
	t.Helper()
	if err := p.stop(syscall.SIGKILL); err != nil {
		t.Error(err)
	}
}

// Running reports whether the server process is running.
func (p *Prosody) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *Prosody) stop(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(prosodyStopTimeout):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return fmt.Errorf("harness: prosody did not stop within %s of %v; killed", prosodyStopTimeout, sig)
}

// Register creates (or resets the password of) an account on the
// VirtualHost with prosodyctl. It works while the server runs or not.
func (p *Prosody) Register(t testing.TB, user, pass string) {
	t.Helper()
	if err := p.RegisterErr(user, pass); err != nil {
		t.Fatal(err)
	}
}

// JID returns user@Domain.
func (p *Prosody) JID(user string) string { return user + "@" + p.Domain }

// Log returns the server's log file so far.
func (p *Prosody) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

func (p *Prosody) logOutput(t testing.TB) {
	t.Helper()
	if out := p.out.String(); out != "" {
		t.Logf("prosody output:\n%s", out)
	}
	if log := p.Log(); log != "" {
		const max = 16 << 10
		if len(log) > max {
			log = "…" + log[len(log)-max:]
		}
		t.Logf("prosody log %s:\n%s", p.LogFile, log)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("harness: no randomness"))
	}
	return hex.EncodeToString(b)
}
