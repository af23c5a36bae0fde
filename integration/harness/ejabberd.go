package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Ejabberd is an ejabberd server run by one test, configured from the
// repository's snippet configs/servers/ejabberd-component.yml.
type Ejabberd struct {
	C2SAddr         string
	ComponentAddr   string
	Domain          string // "localhost"
	ComponentDomain string // "gw.localhost"
	Secret          string
	Dir             string

	node   string
	args   []string      // the ejabberdctl options that select this node
	out    *syncBuffer   // output of every run of the node
	exited chan struct{} // closed when the running node exits; nil when stopped
}

// EjabberdOptions configure StartEjabberdWith.
type EjabberdOptions struct {
	Users map[string]string // user → password, registered on Domain
	// Modules is YAML added to the end of the modules section, each line
	// indented by two spaces like the harness's own modules, e.g.
	//
	//	  mod_muc:
	//	    hosts: [conference.localhost]
	Modules string
}

// StartEjabberd starts a private ejabberd node (Debian's ejabberdctl runs it
// as the ejabberd user) with c2s and the component on free loopback ports,
// registers users, and stops it when the test ends.
func StartEjabberd(t testing.TB, users map[string]string) *Ejabberd {
	t.Helper()
	return StartEjabberdWith(t, EjabberdOptions{Users: users})
}

// StartEjabberdWith is StartEjabberd with more modules.
func StartEjabberdWith(t testing.TB, opts EjabberdOptions) *Ejabberd {
	t.Helper()
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		t.Fatal("ejabberd not installed: run .ci/setup")
	}
	e := newEjabberd(t)
	cfg, err := e.config(RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	if m := strings.TrimRight(opts.Modules, "\n"); m != "" {
		cfg += strings.TrimLeft(m, "\n") + "\n" // modules is the last section
	}
	if err := e.writeFiles(cfg); err != nil {
		t.Fatal(err)
	}
	e.run(t)
	for user, pass := range opts.Users {
		if b, err := e.ctl("register", user, e.Domain, pass).CombinedOutput(); err != nil {
			t.Fatalf("harness: ejabberdctl register %s: %v\n%s", user, err, b)
		}
	}
	return e
}

// newEjabberd makes the node's directory and picks its ports, secret and
// node name.
func newEjabberd(t testing.TB) *Ejabberd {
	t.Helper()
	// t.TempDir is private to root; the ejabberd user needs its own.
	dir, err := os.MkdirTemp("", "xmppgw-ejabberd-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Ejabberd{
		C2SAddr:         "127.0.0.1:" + strconv.Itoa(FreePort(t)),
		ComponentAddr:   "127.0.0.1:" + strconv.Itoa(FreePort(t)),
		Domain:          "localhost",
		ComponentDomain: "gw.localhost",
		Secret:          randomHex(16),
		Dir:             dir,
		node:            "xmppgw" + randomHex(4) + "@localhost",
	}
}

// ejabberdC2S is the c2s listener, on the port %s; it goes first in the
// snippet's listen list.
const ejabberdC2S = `
listen:
  -
    port: %s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
`

// ejabberdBase is the rest of the server's configuration; its modules
// section comes last (EjabberdOptions.Modules extends it).
const ejabberdBase = `
hosts:
  - localhost
loglevel: warning
certfiles: []
auth_method: internal
auth_password_format: plain
acl: {}
access_rules:
  local:
    allow: all
  c2s:
    allow: all
shaper_rules:
  max_user_offline_messages: 1000000
modules:
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_offline: {}
`

// config is ejabberd.yml: the repository's component snippet (under root)
// set to e's domain, secret and port, the c2s listener and ejabberdBase.
func (e *Ejabberd) config(root string) (string, error) {
	snippet, err := os.ReadFile(filepath.Join(root, "configs", "servers", "ejabberd-component.yml"))
	if err != nil {
		return "", err
	}
	cfg := string(snippet)
	for _, r := range []struct{ old, new string }{
		{"gw.example.org", e.ComponentDomain},
		{`"change-me"`, `"` + e.Secret + `"`},
		{"port: 5347", "port: " + port(e.ComponentAddr)},
	} {
		if !strings.Contains(cfg, r.old) {
			return "", fmt.Errorf("harness: the ejabberd snippet lost %q", r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	cfg = strings.Replace(cfg, "\nlisten:\n", fmt.Sprintf(ejabberdC2S, port(e.C2SAddr)), 1)
	return cfg + ejabberdBase, nil
}

// port is the port of the address host:port.
func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// writeFiles lays out e.Dir with the config cfg and an ejabberdctl.cfg
// naming the node, hands it to the ejabberd user and sets e.args.
func (e *Ejabberd) writeFiles(cfg string) error {
	for _, d := range []string{"conf", "spool", "logs"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return err
		}
	}
	conf := filepath.Join(e.Dir, "conf", "ejabberd.yml")
	ctl := filepath.Join(e.Dir, "conf", "ejabberdctl.cfg")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(ctl, []byte("ERLANG_NODE="+e.node+"\n"), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", e.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("harness: chown: %v: %s", err, out)
	}
	e.args = []string{"--config-dir", filepath.Join(e.Dir, "conf"), "--config", conf, "--ctl-config", ctl,
		"--logs", filepath.Join(e.Dir, "logs"), "--spool", filepath.Join(e.Dir, "spool"), "--node", e.node}
	return nil
}

// ctl is the command ejabberdctl args for this node.
func (e *Ejabberd) ctl(args ...string) *exec.Cmd {
	return exec.Command("ejabberdctl", append(e.args, args...)...)
}

// run starts the node, arranges for it to stop (and for its output and log
// to be shown if the test failed) when the test ends, and waits for its
// ports.
func (e *Ejabberd) run(t testing.TB) {
	t.Helper()
	e.out = &syncBuffer{}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(e.Dir, "logs", "ejabberd.log"))
			t.Logf("ejabberd output:\n%s\nlog:\n%s", e.out.String(), logs)
		}
		_ = os.RemoveAll(e.Dir)
	})
	e.Start(t)
}

// Start starts the node in the foreground (again, after Stop: its spool
// keeps users and persistent rooms) and waits for its ports.
func (e *Ejabberd) Start(t testing.TB) {
	t.Helper()
	if e.exited != nil {
		t.Fatal("harness: ejabberd is running already")
	}
	cmd := e.ctl("foreground")
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	e.exited = exited
	for _, addr := range []string{e.C2SAddr, e.ComponentAddr} {
		if err := WaitTCP(addr, 60*time.Second); err != nil {
			t.Fatalf("harness: ejabberd did not listen on %s: %v\n%s", addr, err, e.out.String())
		}
	}
}

// Stop stops the node cleanly and waits until it has exited.
func (e *Ejabberd) Stop(t testing.TB) {
	t.Helper()
	e.stop()
}

func (e *Ejabberd) stop() {
	if e.exited == nil {
		return
	}
	_ = e.ctl("stop").Run()
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		_ = exec.Command("pkill", "-KILL", "-f", e.node).Run()
		<-e.exited
	}
	e.exited = nil
}

// JID returns user@Domain.
func (e *Ejabberd) JID(user string) string { return user + "@" + e.Domain }
