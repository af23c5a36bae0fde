package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// This file lets programs without a testing.TB (the benchmark command
// ./integration/bench) run a Prosody like the tests do.

// StartProsodyDir is StartProsody without a testing.TB: the config, data and
// log live in dir (which must exist), opts.Users are registered, and the
// caller must Close the server. It picks free loopback ports and retries on
// others when one was taken meanwhile.
func StartProsodyDir(dir string, opts ProsodyOptions) (*Prosody, error) {
	if _, err := exec.LookPath("prosody"); err != nil {
		return nil, errors.New("prosody not installed: run .ci/setup")
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	if opts.ComponentDomain == "" {
		opts.ComponentDomain = "gw." + opts.Domain
	}
	if opts.Secret == "" {
		opts.Secret = randomHex(16)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	root, err := RepoDir()
	if err != nil {
		return nil, err
	}
	p := &Prosody{
		Domain:          opts.Domain,
		ComponentDomain: opts.ComponentDomain,
		Secret:          opts.Secret,
		Dir:             dir,
		ConfigFile:      filepath.Join(dir, "prosody.cfg.lua"),
		LogFile:         filepath.Join(dir, "prosody.log"),
		out:             &syncBuffer{},
		command:         opts.Command,
	}
	for attempt := 1; ; attempt++ {
		if err := p.configureDir(root, opts); err != nil {
			return nil, err
		}
		err := p.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return nil, fmt.Errorf("%w\nprosody output:\n%s", err, p.out.String())
		}
	}
	for user, pass := range opts.Users {
		if err := p.RegisterErr(user, pass); err != nil {
			_ = p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *Prosody) configureDir(root string, opts ProsodyOptions) error {
	c2s, err := freePort()
	if err != nil {
		return err
	}
	comp, err := freePort()
	for err == nil && comp == c2s {
		comp, err = freePort()
	}
	if err != nil {
		return err
	}
	p.C2SAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c2s))
	p.ComponentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(comp))
	snippet, err := ComponentSnippet(root, p.ComponentDomain, p.Secret, comp)
	if err != nil {
		return err
	}
	cfg, err := renderConfig(configData{
		Dir:            p.Dir,
		PIDFile:        filepath.Join(p.Dir, "prosody.pid"),
		LogFile:        p.LogFile,
		LogLevel:       opts.LogLevel,
		Domain:         p.Domain,
		C2SPort:        c2s,
		Component:      snippet,
		Global:         opts.Global,
		ComponentExtra: opts.ComponentExtra,
		Host:           opts.Host,
	})
	if err != nil {
		return fmt.Errorf("harness: prosody config: %w", err)
	}
	return os.WriteFile(p.ConfigFile, cfg, 0o600)
}

// RegisterErr is Register without a testing.TB.
func (p *Prosody) RegisterErr(user, pass string) error {
	cmd := exec.Command("prosodyctl", "--config", p.ConfigFile, "register", user, p.Domain, pass)
	cmd.Dir = p.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("harness: prosodyctl register %s: %v\n%s", user, err, out)
	}
	return nil
}

// Close stops the server gracefully (SIGTERM, SIGKILL after a timeout),
// like Stop without a testing.TB.
func (p *Prosody) Close() error { return p.stop(syscall.SIGTERM) }

// PID is the process id of the running server, 0 if it is not running.
func (p *Prosody) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Output is what the server wrote to stdout and stderr so far.
func (p *Prosody) Output() string { return p.out.String() }

// RepoDir is RepoRoot without a testing.TB.
func RepoDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("harness: cannot locate the source tree")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("harness: no go.mod at %s: %v", root, err)
	}
	return root, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("harness: no free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
