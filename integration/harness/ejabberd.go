package harness

import (
	"bytes"
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

	node string
	args []string // the ejabberdctl options that select this node
}

// StartEjabberd starts a private ejabberd node (Debian's ejabberdctl runs it
// as the ejabberd user) with c2s and the component on free loopback ports,
// registers users, and stops it when the test ends.
func StartEjabberd(t testing.TB, users map[string]string) *Ejabberd {
	t.Helper()
	if _, err := exec.LookPath("ejabberdctl"); err != nil {
		t.Fatal("ejabberd not installed: run .ci/setup")
	}
	// t.TempDir is private to root; the ejabberd user needs its own.
	dir, err := os.MkdirTemp("", "xmppgw-ejabberd-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &Ejabberd{
		C2SAddr:         "127.0.0.1:" + strconv.Itoa(FreePort(t)),
		ComponentAddr:   "127.0.0.1:" + strconv.Itoa(FreePort(t)),
		Domain:          "localhost",
		ComponentDomain: "gw.localhost",
		Secret:          randomHex(16),
		Dir:             dir,
		node:            "xmppgw" + randomHex(4) + "@localhost",
	}
	snippet, err := os.ReadFile(filepath.Join(RepoRoot(t), "configs", "servers", "ejabberd-component.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(snippet)
	for _, r := range []struct{ old, new string }{
		{"gw.example.org", e.ComponentDomain},
		{`"change-me"`, `"` + e.Secret + `"`},
		{"port: 5347", "port: " + e.ComponentAddr[strings.LastIndex(e.ComponentAddr, ":")+1:]},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("harness: the ejabberd snippet lost %q", r.old)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	// The c2s listener goes first in the snippet's listen list.
	cfg = strings.Replace(cfg, "\nlisten:\n", fmt.Sprintf(`
listen:
  -
    port: %s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
`, e.C2SAddr[strings.LastIndex(e.C2SAddr, ":")+1:]), 1)
	cfg += `
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
	for _, d := range []string{"conf", "spool", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "conf", "ejabberd.yml")
	ctl := filepath.Join(dir, "conf", "ejabberdctl.cfg")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ctl, []byte("ERLANG_NODE="+e.node+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "ejabberd:ejabberd", dir).CombinedOutput(); err != nil {
		t.Fatalf("harness: chown: %v: %s", err, out)
	}
	e.args = []string{"--config-dir", filepath.Join(dir, "conf"), "--config", conf, "--ctl-config", ctl,
		"--logs", filepath.Join(dir, "logs"), "--spool", filepath.Join(dir, "spool"), "--node", e.node}
	cmd := exec.Command("ejabberdctl", append(e.args, "foreground")...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = exec.Command("ejabberdctl", append(e.args, "stop")...).Run()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = exec.Command("pkill", "-KILL", "-f", e.node).Run()
			<-exited
		}
		if t.Failed() {
			logs, _ := os.ReadFile(filepath.Join(dir, "logs", "ejabberd.log"))
			t.Logf("ejabberd output:\n%s\nlog:\n%s", out.String(), logs)
		}
		_ = os.RemoveAll(dir)
	})
	for _, addr := range []string{e.C2SAddr, e.ComponentAddr} {
		if err := WaitTCP(addr, 60*time.Second); err != nil {
			t.Fatalf("harness: ejabberd did not listen on %s: %v\n%s", addr, err, out.String())
		}
	}
	for user, pass := range users {
		if b, err := exec.Command("ejabberdctl", append(e.args, "register", user, e.Domain, pass)...).CombinedOutput(); err != nil {
			t.Fatalf("harness: ejabberdctl register %s: %v\n%s", user, err, b)
		}
	}
	return e
}

// JID returns user@Domain.
func (e *Ejabberd) JID(user string) string { return user + "@" + e.Domain }
