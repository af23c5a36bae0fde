package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"xmppgw/integration/harness"
)

// BuildGateway builds ./cmd/xmppgw into dir and returns the binary's path.
// rev "" or "worktree" builds the working tree; any other value is a git
// revision, exported with git archive (so that edits in progress in the
// working tree do not matter).
func BuildGateway(dir, rev string) (string, error) {
	root, err := harness.RepoDir()
	if err != nil {
		return "", err
	}
	src := root
	if rev != "" && rev != "worktree" {
		src = filepath.Join(dir, "src")
		if err := os.Mkdir(src, 0o700); err != nil {
			return "", err
		}
		cmd := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, rev, src)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
		}
	}
	bin := filepath.Join(dir, "xmppgw")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xmppgw")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/xmppgw (%s): %v\n%s", src, err, out)
	}
	return bin, nil
}

// gateway returns the starter of the gateway with amqp.prefetch prefetch
// (0: none in its config, so its default).
func (e *Env) gateway(prefetch int) starter {
	return func(q queues) (*bridge, error) { return e.startGateway(q, prefetch) }
}

// startGateway starts the gateway on the queues q.
func (e *Env) startGateway(q queues, prefetch int) (*bridge, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := mkdirTemp(e.dir, "gw-")
	if err != nil {
		return nil, err
	}
	c := gwConfig{prosody: e.Prosody, amqpURL: e.opt.AMQPURL, out: q.out, in: q.in, dead: q.dead,
		prefetch: prefetch, dir: dir, httpAddr: fmt.Sprintf("127.0.0.1:%d", port),
		logLevel: e.opt.LogLevel, queueType: e.opt.QueueType}
	p, err := startGateway(e.bin, c)
	if err != nil {
		return nil, err
	}
	return &bridge{proc: p, httpAddr: c.httpAddr}, nil
}

// process is a child process (the gateway or the baseline bridge) whose CPU
// time the benchmark measures.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProcess(name, logFile string, env []string, bin string, args ...string) (*process, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (SIGKILL after timeout). It returns an error
// if the process did not exit 0.
func (p *process) stop(timeout time.Duration) error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s; killed", p.name, timeout)
	}
	if c := p.cmd.ProcessState.ExitCode(); c != 0 {
		return fmt.Errorf("%s exited with code %d; log %s:\n%s", p.name, c, p.log, tail(p.log, 4096))
	}
	return nil
}

func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// gwConfig is what the benchmark varies in the gateway's config.
type gwConfig struct {
	prosody             *harness.Prosody
	amqpURL             string
	out, in, dead       string
	prefetch            int // 0: not in the config (the gateway's default)
	dir                 string
	httpAddr            string
	logLevel, queueType string
}

func (c gwConfig) yaml() string {
	prefetch := ""
	if c.prefetch > 0 {
		prefetch = fmt.Sprintf("  prefetch: %d\n", c.prefetch)
	}
	return fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 30s
amqp:
  url: %s
  out_queue: %s
  in_queue: %s
  dead_letter_queue: %s
  queue_type: %s
%spresence:
  store: %s
http:
  listen: %s
log:
  level: %s
`, c.prosody.ComponentAddr, c.prosody.ComponentDomain, c.prosody.Secret, c.amqpURL, c.out, c.in, c.dead,
		c.queueType, prefetch, filepath.Join(c.dir, "xmppgw.db"), c.httpAddr, c.logLevel)
}

// startGateway writes the config into c.dir and runs the gateway binary.
func startGateway(bin string, c gwConfig) (*process, error) {
	f := filepath.Join(c.dir, "xmppgw.yaml")
	if err := os.WriteFile(f, []byte(c.yaml()), 0o600); err != nil {
		return nil, err
	}
	return startProcess("gateway", filepath.Join(c.dir, "gateway.log"), nil, bin, "run", "-c", f)
}

// gatewayDefaultPrefetch asks the gateway binary (check-config) which
// amqp.prefetch it uses when its config names none.
func (e *Env) gatewayDefaultPrefetch() (int, error) {
	dir, err := mkdirTemp(e.dir, "check-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	c := gwConfig{prosody: e.Prosody, amqpURL: e.opt.AMQPURL, out: "o", in: "i", dead: "d", dir: dir,
		httpAddr: "127.0.0.1:1", logLevel: "warn", queueType: e.opt.QueueType}
	f := filepath.Join(dir, "xmppgw.yaml")
	if err := os.WriteFile(f, []byte(c.yaml()), 0o600); err != nil {
		return 0, err
	}
	out, err := exec.Command(e.bin, "check-config", "-c", f).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("xmppgw check-config: %v\n%s", err, out)
	}
	return parsePrefetch(out)
}

// prefetchKey is amqp.prefetch in the effective config that check-config
// prints as YAML.
var prefetchKey = regexp.MustCompile(`(?m)^amqp:\n(?:[ ].*\n)*?[ ]+prefetch: (\d+)$`)

func parsePrefetch(checkConfig []byte) (int, error) {
	m := prefetchKey.FindSubmatch(checkConfig)
	if m == nil {
		return 0, fmt.Errorf("xmppgw check-config: no amqp.prefetch in:\n%s", checkConfig)
	}
	return strconv.Atoi(string(m[1]))
}

// waitReady polls /readyz until it answers 200.
func waitReady(p *process, httpAddr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return fmt.Errorf("%s exited during start; log:\n%s", p.name, tail(p.log, 4096))
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s; log:\n%s", p.name, timeout, tail(p.log, 4096))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrape reads the gateway's /metrics into "name{labels}" → value.
func scrape(httpAddr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, errors.New("metrics: " + resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// sumMetric adds up every series of the metric name (all label values).
func sumMetric(m map[string]float64, name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}
