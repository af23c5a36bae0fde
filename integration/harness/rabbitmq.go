package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A private RabbitMQ node for the tests that stop, restart or cut the
// broker: the shared broker of the machine (AMQPURL) serves every other
// test and every engineer's unit tests, and is never touched.
//
// The node runs the Debian package's scripts from /usr/lib/rabbitmq/bin
// directly (the /usr/sbin wrappers switch to the rabbitmq user and reset
// HOME), as the user running the tests, with everything in a temp dir:
// HOME (its own Erlang cookie, shared with rabbitmqctl through HOME), the
// config, Mnesia, logs and the pid file. Management is off.

// Timeouts of the RabbitMQ node.
const (
	rabbitStartTimeout = 90 * time.Second
	rabbitStopTimeout  = 30 * time.Second
)

// RabbitMQOptions shapes a private node. The zero value is a standalone
// node with default settings.
type RabbitMQOptions struct {
	// Heartbeat is the broker's heartbeat in seconds (rabbitmq.conf
	// `heartbeat`); 0 keeps RabbitMQ's default (60 s). A client gets the
	// smaller of its own and the broker's, so a short one here makes a
	// stalled link noticed quickly by both ends.
	Heartbeat int
	// Config is extra rabbitmq.conf lines.
	Config string
	// Cookie is the node's Erlang cookie; "" makes a random one. The
	// nodes of a cluster (StartRabbitCluster) share one.
	Cookie string
}

// RabbitMQ is a private RabbitMQ node started by one test.
type RabbitMQ struct {
	Node     string // xmppgw-test-<hex>@localhost
	Port     int    // AMQP port on 127.0.0.1
	DistPort int    // Erlang distribution port on 127.0.0.1
	URL      string // amqp://guest:guest@127.0.0.1:Port/
	Dir      string // HOME, config, Mnesia, logs
	// StartTime is how long the first start took (process start until
	// `rabbitmqctl await_startup` returned).
	StartTime time.Duration

	env []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

const rabbitBin = "/usr/lib/rabbitmq/bin"

// The CLI tools (rabbitmqctl) listen on the distribution ports 35672–35682
// by default (RABBITMQ_CTL_DIST_PORT_MIN/MAX); a node must not take them,
// nor the shared broker's 5672/25672.
func rabbitPortOK(p int) bool {
	return !(p >= 35672 && p <= 35682) && p != 5672 && p != 25672 && p != 4369
}

// StartRabbitMQ starts a private node in t.TempDir() and stops it when the
// test ends (logging its output if the test failed).
func StartRabbitMQ(t testing.TB, opts RabbitMQOptions) *RabbitMQ {
	t.Helper()
	dir, err := os.MkdirTemp("", "xmppgw-rabbit-")
	if err != nil {
		t.Fatal(err)
	}
	r, err := StartRabbitMQDir(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Logf("harness: %v", err)
		}
		if t.Failed() {
			t.Logf("rabbitmq output:\n%s", tail(r.Output(), 8<<10))
			if b, err := os.ReadFile(r.LogFile()); err == nil {
				t.Logf("rabbitmq log %s:\n%s", r.LogFile(), tail(string(b), 16<<10))
			}
		}
		os.RemoveAll(dir)
	})
	return r
}

// StartRabbitMQDir is StartRabbitMQ without a testing.TB: everything lives
// in dir (which must exist); the caller must Close the node.
func StartRabbitMQDir(dir string, opts RabbitMQOptions) (*RabbitMQ, error) {
	if _, err := os.Stat(filepath.Join(rabbitBin, "rabbitmq-server")); err != nil {
		return nil, errors.New("harness: rabbitmq-server not installed: run .ci/setup")
	}
	var ports []int
	for len(ports) < 2 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if rabbitPortOK(p) && (len(ports) == 0 || ports[0] != p) {
			ports = append(ports, p)
		}
	}
	r := &RabbitMQ{
		Node:     "xmppgw-test-" + randomHex(4) + "@localhost",
		Port:     ports[0],
		DistPort: ports[1],
		Dir:      dir,
		out:      &syncBuffer{},
	}
	r.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.Port)
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cookie := opts.Cookie
	if cookie == "" {
		cookie = strings.ToUpper(randomHex(16))
	}
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(cookie), 0o400); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("listeners.tcp.1 = 127.0.0.1:%d\nloopback_users = none\n", r.Port)
	if opts.Heartbeat > 0 {
		conf += fmt.Sprintf("heartbeat = %d\n", opts.Heartbeat)
	}
	conf += opts.Config
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[].\n",
		"rabbitmq-env.conf": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	// The same environment for the server and every rabbitmqctl: the cookie
	// through HOME, our own (empty) rabbitmq-env.conf instead of
	// /etc/rabbitmq's, which names the shared node.
	r.env = append(filteredEnv(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+r.Node,
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
	)
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

// filteredEnv is the environment without RABBITMQ_* and ERL_* variables.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "ERL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// LogFile is the node's main log.
func (r *RabbitMQ) LogFile() string { return filepath.Join(r.Dir, "log", r.Node+".log") }

// Output is what the server wrote to stdout and stderr so far.
func (r *RabbitMQ) Output() string { return r.out.String() }

// PID is the process id of the node (the Erlang VM), 0 if it is not
// running.
func (r *RabbitMQ) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

func (r *RabbitMQ) start() error {
	r.mu.Lock()
	if r.cmd != nil {
		r.mu.Unlock()
		return errors.New("harness: rabbitmq already running")
	}
	began := time.Now()
	cmd := exec.Command(filepath.Join(rabbitBin, "rabbitmq-server"))
	cmd.Dir = r.Dir
	cmd.Env = append(append([]string(nil), r.env...),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(r.DistPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(r.Dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(r.Dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(r.Dir, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(r.Dir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(r.Dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(r.Dir, "rabbitmq.pid"),
	)
	cmd.Stdout = r.out
	cmd.Stderr = r.out
	// The script execs the Erlang VM: this process is the node. Its own
	// process group; killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("harness: start rabbitmq: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()

	// Wait for the AMQP port, then for the app (await_startup).
	ctx, cancel := context.WithTimeout(context.Background(), rabbitStartTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
	for WaitTCP(addr, 200*time.Millisecond) != nil {
		select {
		case <-done:
			r.kill()
			return fmt.Errorf("harness: rabbitmq exited during start: %v\n%s", cmd.ProcessState, tail(r.out.String(), 4<<10))
		case <-ctx.Done():
			r.kill()
			return fmt.Errorf("harness: rabbitmq did not open %s within %s\n%s", addr, rabbitStartTimeout, tail(r.out.String(), 4<<10))
		default:
		}
	}
	if _, err := r.ctl(ctx, "await_startup"); err != nil {
		r.kill()
		return err
	}
	if r.StartTime == 0 {
		r.StartTime = time.Since(began)
	}
	return nil
}

// Ctl runs rabbitmqctl against the node and returns its output.
func (r *RabbitMQ) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rabbitStartTimeout)
	defer cancel()
	return r.ctl(ctx, args...)
}

func (r *RabbitMQ) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(rabbitBin, "rabbitmqctl"), append([]string{"-q", "-n", r.Node}, args...)...)
	cmd.Dir = r.Dir
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("harness: rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 2<<10))
	}
	return string(out), nil
}

// StopApp stops the RabbitMQ application (the Erlang node stays up): every
// client connection is closed and the AMQP port closes, as in a broker
// restart.
func (r *RabbitMQ) StopApp(t testing.TB) {
	t.Helper()
	if _, err := r.Ctl("stop_app"); err != nil {
		t.Fatal(err)
	}
}

// StartApp starts the application again after StopApp and waits until it
// accepts connections.
func (r *RabbitMQ) StartApp(t testing.TB) {
	t.Helper()
	if _, err := r.Ctl("start_app"); err != nil {
		t.Fatal(err)
	}
	if err := WaitTCP(net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// CloseConnections closes every client connection whose client properties
// (the connection name included) contain marker, as an outage would, and
// returns how many it closed.
func (r *RabbitMQ) CloseConnections(marker string) (int, error) {
	pids, err := r.Connections(marker)
	if err != nil {
		return 0, err
	}
	return len(pids), r.CloseConnectionPIDs(pids)
}

// Connections lists the pids of the client connections whose client
// properties contain marker.
func (r *RabbitMQ) Connections(marker string) ([]string, error) {
	out, err := r.Ctl("list_connections", "pid", "client_properties")
	if err != nil {
		return nil, err
	}
	var pids []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, marker) {
			pids = append(pids, strings.Fields(line)[0])
		}
	}
	return pids, nil
}

// CloseConnectionPIDs closes the connections with rabbitmqctl
// close_connection, all at once (each rabbitmqctl takes about a second to
// start).
func (r *RabbitMQ) CloseConnectionPIDs(pids []string) error {
	errs := make([]error, len(pids))
	var wg sync.WaitGroup
	for i, pid := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.Ctl("close_connection", pid, "test outage")
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops the node (rabbitmqctl stop, SIGKILL after a timeout) and
// waits until it has exited. It may be called more than once.
func (r *RabbitMQ) Close() error {
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if !running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), rabbitStopTimeout)
	defer cancel()
	_, err := r.ctl(ctx, "stop")
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("harness: rabbitmq node %s did not stop within %s; killed", r.Node, rabbitStopTimeout))
	}
	r.kill()
	return err
}

// kill ends the node's process group with SIGKILL and waits for it.
func (r *RabbitMQ) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	<-r.done
	r.cmd, r.done = nil, nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	b := []byte(s[len(s)-n:])
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return "…" + string(b)
}
