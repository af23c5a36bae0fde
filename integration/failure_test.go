package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// collector receives messages for one account across disconnections: when
// its client's stream ends it dials again until it succeeds, and offline
// storage hands over what arrived meanwhile.
type collector struct {
	mu    sync.Mutex
	seen  map[string]int // body -> times received
	total int
	dials int
}

func collect(t *testing.T, p *harness.Prosody, user, pass string) *collector {
	t.Helper()
	c := &collector{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			cl, err := harness.Dial(dctx, p.C2SAddr, user+"@"+p.Domain, pass)
			dcancel()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c.mu.Lock()
			c.dials++
			c.mu.Unlock()
			take := func(m harness.Msg) {
				c.mu.Lock()
				c.seen[m.Body]++
				c.total++
				c.mu.Unlock()
			}
		read:
			for {
				select {
				case <-ctx.Done():
					break read
				case m, ok := <-cl.Messages():
					if !ok {
						break read
					}
					take(m)
				case <-cl.Done():
					// Take what was buffered before the stream ended.
					for m := range cl.Messages() {
						take(m)
					}
					break read
				}
			}
			_ = cl.Close()
		}
	}()
	return c
}

func (c *collector) counts() (distinct, total, dials int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.total, c.dials
}

// missing lists the expected bodies not received (at most 10).
func (c *collector) missing(bodies []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range bodies {
		if c.seen[b] == 0 {
			out = append(out, b)
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// numberedItems builds n items for target with bodies "<tag> <i>".
func numberedItems(t *testing.T, tag, target string, n int) (bodies [][]byte, texts []string) {
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("%s %d", tag, i)
		texts = append(texts, text)
		bodies = append(bodies, mustJSON(t, outItem{Target: target, Text: text}))
	}
	return bodies, texts
}

// waitAll waits until every text was received at least once.
func (c *collector) waitAll(t *testing.T, texts []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		distinct, total, dials := c.counts()
		if distinct >= len(texts) && len(c.missing(texts)) == 0 {
			t.Logf("received all %d items (%d deliveries, %d duplicates, %d client logins)", len(texts), total, total-distinct, dials)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d items received; missing e.g. %q", timeout, distinct, len(texts), c.missing(texts))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backlog starts a Prosody whose user alice is online through a collector,
// and puts n numbered items for her ("<tag> <i>", message ids "<tag>-<i>")
// into freshly declared queues, before any gateway runs.
func backlog(t *testing.T, tag string, n int) (*harness.Prosody, *collector, queues, []string) {
	t.Helper()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	col := collect(t, p, "alice", "alice-pass")
	waitFor(t, 10*time.Second, "client online", func() bool { _, _, d := col.counts(); return d > 0 })
	q := newQueues(t)
	bodies, texts := numberedItems(t, tag, p.JID("alice"), n)
	q.declare(t)
	publishItems(t, q.out, tag+"-", bodies)
	return p, col, q, texts
}

func TestOutboundSurvivesProsodyRestart(t *testing.T) {
	p, col, q, texts := backlog(t, "restart", 20000)
	gw := startGateway(t, gatewayConfig(t, p, q))

	waitFor(t, 60*time.Second, "the flow to start", func() bool { d, _, _ := col.counts(); return d >= 2000 })
	p.Stop(t)
	d, _, _ := col.counts()
	t.Logf("prosody stopped after %d items received", d)
	waitFor(t, 20*time.Second, "the gateway to notice", func() bool { return !gw.Ready() })
	time.Sleep(500 * time.Millisecond)
	p.Start(t)

	col.waitAll(t, texts, 120*time.Second)
	waitFor(t, 30*time.Second, "outbound queue drained", func() bool { return harness.QueueLen(t, q.out) == 0 })
	if r := metricValue(t, gw, `xmppgw_reconnects_total{link="xmpp"}`); r < 1 {
		t.Errorf("xmpp reconnects = %v, want ≥ 1", r)
	}
}

// gatewayProcess runs the xmppgw binary with a config file.
type gatewayProcess struct {
	bin, cfg string
	cmd      *exec.Cmd
	log      *os.File
}

func (gp *gatewayProcess) start(t *testing.T) {
	t.Helper()
	gp.cmd = exec.Command(gp.bin, "run", "-c", gp.cfg)
	gp.cmd.Stdout = gp.log
	gp.cmd.Stderr = gp.log
	if err := gp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func TestOutboundSurvivesGatewayKill(t *testing.T) {
	p, col, q, texts := backlog(t, "kill", 20000)
	bin := harness.BuildBinary(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "xmppgw.yaml")
	httpPort := harness.FreePort(t)
	yaml := fmt.Sprintf(`xmpp:
  server: %s
  domain: %s
  secret: %s
amqp:
  out_queue: %s
  in_queue: %s
  dead_letter_queue: %s
presence:
  store: %s
http:
  listen: 127.0.0.1:%d
`, p.ComponentAddr, p.ComponentDomain, p.Secret, q.out, q.in, q.dead, filepath.Join(dir, "xmppgw.db"), httpPort)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	gp := &gatewayProcess{bin: bin, cfg: cfgFile, log: logf}
	t.Cleanup(func() {
		if gp.cmd != nil && gp.cmd.ProcessState == nil {
			_ = gp.cmd.Process.Signal(syscall.SIGTERM)
			_ = gp.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("gateway log:\n%s", b)
		}
	})
	gp.start(t)
	waitFor(t, 60*time.Second, "the flow to start", func() bool { d, _, _ := col.counts(); return d >= 3000 })
	if err := gp.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = gp.cmd.Wait()
	d, _, _ := col.counts()
	t.Logf("gateway killed after %d items received; %d still in the queue", d, harness.QueueLen(t, q.out))
	gp.start(t)
	col.waitAll(t, texts, 120*time.Second)
	waitFor(t, 30*time.Second, "outbound queue drained", func() bool { return harness.QueueLen(t, q.out) == 0 })

	// A graceful stop exits 0.
	if err := gp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = gp.cmd.Wait()
	if code := gp.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d (%v), want 0", code, err)
	}
	if b, _ := os.ReadFile(logf.Name()); !strings.Contains(string(b), "stopped") {
		t.Errorf("log has no stop line:\n%s", b)
	}
}

// TestOutboundSurvivesBrokerConnectionLoss closes the gateway's broker
// connections (consumer and publisher) while 20,000 items flow: every item
// still arrives.
func TestOutboundSurvivesBrokerConnectionLoss(t *testing.T) {
	p, col, q, texts := backlog(t, "broker", 20000)
	// A slow rate keeps the flow going long enough to cut it twice.
	cfg := gatewayConfig(t, p, q)
	cfg.Outbound.Rate = 2000
	gw := startGateway(t, cfg)

	for _, after := range []int{2000, 8000} {
		waitFor(t, 60*time.Second, fmt.Sprintf("%d items received", after), func() bool { d, _, _ := col.counts(); return d >= after })
		if closed := closeBrokerConnections(t, q.out); closed < 2 {
			t.Fatalf("closed %d broker connections of the gateway, want consumer and publisher", closed)
		}
		d, _, _ := col.counts()
		t.Logf("broker connections closed after %d items received", d)
	}
	col.waitAll(t, texts, 120*time.Second)
	waitFor(t, 30*time.Second, "outbound queue drained", func() bool { return harness.QueueLen(t, q.out) == 0 })
	if r := metricValue(t, gw, `xmppgw_reconnects_total{link="amqp"}`); r < 2 {
		t.Errorf("amqp reconnects = %v, want ≥ 2", r)
	}
}
