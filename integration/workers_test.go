package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// exampleWorker is one of the example workers in examples/: how to run it.
type exampleWorker struct {
	lang string
	// command returns the command line of the worker, preparing what it
	// needs (npm ci for Node.js) in dir, a temporary directory.
	command func(t *testing.T, dir string) []string
}

// exampleWorkers are the workers of examples/, each run with the tools
// .ci/setup installs from Debian (php-cli, php-amqplib, python3-pika) and
// npm (amqplib, pinned by package-lock.json).
var exampleWorkers = []exampleWorker{
	{"php", func(t *testing.T, _ string) []string {
		return []string{need(t, "php"), abs(t, "../examples/php/echo_worker.php")}
	}},
	{"python", func(t *testing.T, _ string) []string {
		// Debian's python3, which has python3-pika (not a pyenv or venv
		// python3 that may come first on PATH).
		return []string{need(t, "/usr/bin/python3"), abs(t, "../examples/python/echo_worker.py")}
	}},
	{"node", func(t *testing.T, dir string) []string {
		// A copy of the example, with the dependencies of its lock file.
		for _, f := range []string{"package.json", "package-lock.json", "echo_worker.js"} {
			b, err := os.ReadFile(filepath.Join("../examples/node", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		npm := exec.CommandContext(ctx, need(t, "npm"), "ci", "--no-audit", "--no-fund", "--ignore-scripts")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in a copy of examples/node: %v\n%s", err, out)
		}
		return []string{need(t, "node"), filepath.Join(dir, "echo_worker.js")}
	}},
}

// need returns the path of a program, or fails the test naming the fix.
func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s not found (run .ci/setup): %v", prog, err)
	}
	return p
}

func abs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWorkers runs each example worker against the real gateway: a real
// XMPP client writes "ping" to a JID of the component, the worker reads
// the event from the in queue and answers with an item, the client
// receives "pong" from that JID; other text comes back as it was. SIGTERM
// then stops the worker with exit status 0, and it leaves no event
// unacknowledged behind.
func TestWorkers(t *testing.T) {
	for _, w := range exampleWorkers {
		t.Run(w.lang, func(t *testing.T) {
			p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
			alice := harness.DialClient(t, p, "alice", "alice-pass")
			q := newQueues(t)
			startGateway(t, gatewayConfig(t, p, q))
			argv := w.command(t, t.TempDir())
			worker := startWorker(t, argv, map[string]string{
				"XMPPGW_AMQP_URL":       harness.BrokerURL(t),
				"XMPPGW_AMQP_IN_QUEUE":  q.in,
				"XMPPGW_AMQP_OUT_QUEUE": q.out,
			})

			bot := "bot@" + p.ComponentDomain
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, tc := range []struct{ send, want string }{
				{"ping", "pong"},
				{"hello <&> 'quoted' \"twice\" 🎉 שלום", "hello <&> 'quoted' \"twice\" 🎉 שלום"},
				{" ping\n", "pong"},
			} {
				if err := alice.Send(ctx, bot, tc.send); err != nil {
					t.Fatal(err)
				}
				m := recv(t, alice, 60*time.Second)
				if m.Body != tc.want || m.From != bot || m.Type != "chat" || !strings.HasPrefix(m.ID, "echo-") {
					t.Fatalf("sent %q to %s; got %q from %q, type %q, id %q; want %q from %s (worker: %s)",
						tc.send, bot, m.Body, m.From, m.Type, m.ID, tc.want, bot, worker.state())
				}
			}

			if err := worker.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case <-worker.done:
			case <-time.After(60 * time.Second):
				t.Fatal("the worker did not stop within 60 s of SIGTERM")
			}
			if worker.err != nil {
				t.Fatalf("the worker's exit after SIGTERM: %v, want status 0", worker.err)
			}
			// Its channel is closed: an event it had not acknowledged
			// would be back in the queue now.
			if n := harness.QueueLen(t, q.in); n != 0 {
				var left []string
				for _, d := range harness.Get(t, q.in, n, 0) {
					left = append(left, string(d.Body))
				}
				t.Fatalf("%d events in %s after the worker stopped, want 0 (all acknowledged): %s", n, q.in, strings.Join(left, "\n"))
			}
		})
	}
}

// runningWorker is a worker subprocess.
type runningWorker struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
	err  error         // of Wait, set before done is closed
}

// state says whether the worker still runs, for failure messages.
func (w *runningWorker) state() string {
	select {
	case <-w.done:
		return "exited: " + errString(w.err)
	default:
		return "running"
	}
}

func errString(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// startWorker starts argv with the environment of the test, without any
// XMPPGW_ variable but those of env, its output going to the test log. A
// worker still running when the test ends is killed.
func startWorker(t *testing.T, argv []string, env map[string]string) *runningWorker {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XMPPGW_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	cmd.Stdout = testLogWriter{t}
	cmd.Stderr = testLogWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(argv, " "), err)
	}
	w := &runningWorker{cmd: cmd, done: make(chan struct{})}
	go func() {
		w.err = cmd.Wait()
		close(w.done)
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
			return
		default:
		}
		_ = cmd.Process.Kill()
		<-w.done
		var ee *exec.ExitError
		if w.err != nil && !errors.As(w.err, &ee) {
			t.Logf("worker: %v", w.err)
		}
	})
	return w
}
