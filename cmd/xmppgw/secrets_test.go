package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// secretVariants place a sentinel secret in every spot a secret can come
// from, with URLs that amqp091 accepts, misparses or rejects. Every TOKEN
// of a variant is the same sentinel, so that a fragment is found too.
var secretVariants = []struct {
	name string
	file string
	env  map[string]string
	ok   bool // check-config accepts it
}{
	{name: "component secret in file", file: "xmpp:\n  domain: gw.example.org\n  secret: TOKEN\n", ok: true},
	{name: "component secret from env", file: "xmpp:\n  domain: gw.example.org\n", env: map[string]string{"XMPPGW_XMPP_SECRET": "TOKEN"}, ok: true},
	{name: "client password in file", file: "xmpp:\n  mode: client\n  jid: bot@example.org\n  password: TOKEN\n", ok: true},
	{name: "client password from env", file: "xmpp:\n  mode: client\n  jid: bot@example.org\n", env: map[string]string{"XMPPGW_XMPP_PASSWORD": "TOKEN"}, ok: true},
	{name: "url password in file", file: "amqp:\n  url: amqp://user:TOKEN@127.0.0.1:1/\n", ok: true},
	{name: "url password from env", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@127.0.0.1:1/"}, ok: true},
	{name: "url password percent-encoded", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN%40TOKEN%20TOKEN@127.0.0.1:1/"}, ok: true},
	{name: "url password with @", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@TOKEN@127.0.0.1:1/"}, ok: true},
	{name: "url password with %zz in file", file: "amqp:\n  url: 'amqp://user:TOKEN%zzTOKEN@127.0.0.1:1/'\n"},
	{name: "url password with %zz from env", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN%zzTOKEN@127.0.0.1:1/"}},
	{name: "url password with a space", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN TOKEN@127.0.0.1:1/"}},
	{name: "url password with #", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN#TOKEN@127.0.0.1:1/"}},
	{name: "url password with @ and #", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@TOKEN#TOKEN@127.0.0.1:1/"}},
	{name: "url password with /", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:12/TOKEN@127.0.0.1:1/"}},
	{name: "url without scheme", env: map[string]string{"XMPPGW_AMQP_URL": "user:TOKEN@127.0.0.1:1"}},
	{name: "secrets and an invalid key", file: "xmpp:\n  domain: gw.example.org\n  secret: TOKEN\n  keepalive: 1ms\namqp:\n  url: amqp://u:TOKEN@127.0.0.1:1/\n"},
	{name: "secret as a section", file: "xmpp:\n  domain: gw.example.org\n  secret:\n    TOKEN: 1\n"},
}

// secretBase is what every variant adds to its file: a complete component
// config that dials nothing that answers (port 1). Its amqp.url is set: the
// default is the local broker, where after make run the out queue exists
// and send would succeed.
func secretBase(t *testing.T) string {
	return "xmpp:\n  server: 127.0.0.1:1\n  domain: gw.example.org\n  secret: plain-base-secret\n" +
		"amqp:\n  url: amqp://guest:guest@127.0.0.1:1/\n" +
		"http:\n  listen: \"\"\npresence:\n  store: " + filepath.Join(t.TempDir(), "p.db") + "\n"
}

// merge puts the variant's sections over the base ones (a YAML file cannot
// repeat a section).
func mergeYAML(base, over string) string {
	sections := map[string]string{}
	var order []string
	for _, doc := range []string{base, over} {
		var cur string
		for _, line := range strings.SplitAfter(doc, "\n") {
			if line == "" {
				continue
			}
			if !strings.HasPrefix(line, " ") {
				cur = strings.TrimSuffix(strings.TrimSpace(line), ":")
				if _, ok := sections[cur]; !ok {
					order = append(order, cur)
					sections[cur] = ""
				}
				continue
			}
			key := strings.TrimSpace(strings.SplitN(line, ":", 2)[0])
			// Drop the base's line for the same key (sub-keys of the
			// variant stay).
			var kept []string
			for _, l := range strings.SplitAfter(sections[cur], "\n") {
				if l != "" && (strings.HasPrefix(l, "    ") || strings.TrimSpace(strings.SplitN(l, ":", 2)[0]) != key) {
					kept = append(kept, l)
				}
			}
			sections[cur] = strings.Join(kept, "") + line
		}
	}
	var b strings.Builder
	for _, s := range order {
		b.WriteString(s + ":\n" + sections[s])
	}
	return b.String()
}

func TestCommandsNeverPrintSecrets(t *testing.T) {
	for i, v := range secretVariants {
		t.Run(v.name, func(t *testing.T) {
			tok := fmt.Sprintf("Qz8CmdSnTl%02dX", i)
			for k, val := range v.env {
				t.Setenv(k, strings.ReplaceAll(val, "TOKEN", tok))
			}
			path := filepath.Join(t.TempDir(), "c.yaml")
			body := mergeYAML(secretBase(t), strings.ReplaceAll(v.file, "TOKEN", tok))
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			check := func(what, out string) {
				t.Helper()
				if strings.Contains(strings.ToLower(out), strings.ToLower(tok)) {
					t.Errorf("%d: %s prints the secret:\n%s", i, what, out)
				}
			}
			code, out, errs := runCmd("check-config", "-c", path)
			check("check-config", out+errs)
			if want := map[bool]int{true: exitOK, false: exitUsage}[v.ok]; code != want {
				t.Errorf("%d: check-config: exit %d, want %d\n%s%s", i, code, want, out, errs)
			}
			if v.ok && !strings.Contains(out, "valid") {
				t.Errorf("%d: check-config:\n%s", i, out)
			}
			code, out, errs = runCmd("send", "-c", path, "--target", "a@example.org", "--text", "x", "--timeout", "3s")
			check("send", out+errs)
			if code == exitOK {
				t.Errorf("%d: send succeeded against a dead broker", i)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the gateway's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `xmppgw run` against a dead broker logs every retry: none quotes the
// password, in text or JSON logs; a URL that cannot be parsed is refused at
// the start (exit 2) instead of being quoted at every retry.
func TestRunRetriesNeverPrintSecrets(t *testing.T) {
	for i, tc := range []struct {
		format, pass string
		code         int
	}{
		0: {"text", "TOKEN%23TOKEN", exitOK},
		1: {"json", "TOKEN%23TOKEN", exitOK},
		2: {"text", "TOKEN%zzTOKEN", exitUsage},
		3: {"json", "TOKEN#TOKEN", exitUsage},
	} {
		tok := fmt.Sprintf("Qz8RunSnTl%02dX", i)
		t.Setenv("XMPPGW_AMQP_URL", "amqp://user:"+strings.ReplaceAll(tc.pass, "TOKEN", tok)+"@127.0.0.1:1/")
		t.Setenv("XMPPGW_XMPP_SECRET", tok+"-component")
		t.Setenv("XMPPGW_LOG_LEVEL", "debug")
		t.Setenv("XMPPGW_LOG_FORMAT", tc.format)
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(secretBase(t)), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr syncBuffer
		done := make(chan int, 1)
		go func() { done <- run([]string{"run", "-c", path}, nil, &stderr, &stderr) }()
		code := -1
		deadline := time.Now().Add(15 * time.Second)
	wait:
		for !strings.Contains(stderr.String(), "amqp connect failed") && time.Now().Before(deadline) {
			select {
			case code = <-done:
				break wait
			case <-time.After(50 * time.Millisecond):
			}
		}
		if code < 0 {
			// The gateway's signal context is set up before it dials.
			if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("run did not stop on SIGINT")
			}
		}
		out := stderr.String()
		if code != tc.code {
			t.Errorf("%d: exit %d, want %d:\n%s", i, code, tc.code, out)
		}
		if tc.code == exitOK && !strings.Contains(out, "amqp connect failed") {
			t.Errorf("%d: no retry was logged:\n%s", i, out)
		}
		if strings.Contains(strings.ToLower(out), strings.ToLower(tok)) {
			t.Errorf("%d: the log prints a secret:\n%s", i, out)
		}
	}
}

func TestCheckConfigQuiet(t *testing.T) {
	code, out, errs := runCmd("check-config", "-q", "-c", "../../configs/component.example.yaml")
	if code != exitOK || out != "" || errs != "" {
		t.Fatalf("check-config -q: exit %d, printed %q %q", code, out, errs)
	}
}
