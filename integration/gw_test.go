package integration

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/gateway"
	"xmppgw/integration/harness"
	"xmppgw/queue"
)

// testLogWriter sends log lines to t.Log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// queues are the uniquely named queues of one test.
type queues struct{ out, in, dead string }

func newQueues(t testing.TB) queues {
	q := queues{
		out:  harness.UniqueQueue(t, "out"),
		in:   harness.UniqueQueue(t, "in"),
		dead: harness.UniqueQueue(t, "dead"),
	}
	return q
}

// declare declares the queues as the gateway does, for tests that publish
// before the gateway runs.
func (q queues) declare(t testing.TB) {
	t.Helper()
	err := queue.Declare(harness.AMQPConn(t), queue.Topology{
		OutQueue: q.out, InQueue: q.in, DeadLetterQueue: q.dead, QueueType: queue.Classic,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gatewayConfig is a component-mode config for p with the queues q.
func gatewayConfig(t testing.TB, p *harness.Prosody, q queues) *gateway.Config {
	t.Helper()
	return componentConfig(t, p.ComponentAddr, p.ComponentDomain, p.Secret, q)
}

// componentConfig is a component-mode config for the server at addr.
func componentConfig(t testing.TB, addr, domain, secret string, q queues) *gateway.Config {
	t.Helper()
	return writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
`, addr, domain, secret)+restOfConfig(t, q))
}

// restOfConfig is everything but the xmpp section of a test gateway's
// config: the broker and the queues q, a private store, an HTTP listener on
// a free port, debug logs.
func restOfConfig(t testing.TB, q queues) string {
	return fmt.Sprintf(`amqp:
  url: %s
  out_queue: %s
  in_queue: %s
  dead_letter_queue: %s
presence:
  store: %s
http:
  listen: 127.0.0.1:0
log:
  level: debug
`, harness.BrokerURL(t), q.out, q.in, q.dead, filepath.Join(t.TempDir(), "xmppgw.db"))
}

// writeAndLoad writes a config file and loads it as the binary would.
func writeAndLoad(t testing.TB, yaml string) *gateway.Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.LoadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runningGateway is a gateway running in-process.
type runningGateway struct {
	*gateway.Gateway
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startGateway runs the gateway in-process until the test ends, and waits
// until it is ready.
func startGateway(t testing.TB, cfg *gateway.Config) *runningGateway {
	t.Helper()
	rg := startGatewayNoWait(t, cfg)
	waitFor(t, 20*time.Second, "gateway ready", rg.Ready)
	return rg
}

// startGatewayNoWait runs the gateway in-process until the test ends.
func startGatewayNoWait(t testing.TB, cfg *gateway.Config) *runningGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	g, err := gateway.New(cfg, gateway.Deps{Logger: log, Registry: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rg := &runningGateway{Gateway: g, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- g.Run(ctx) }()
	t.Cleanup(func() { _ = rg.stop(t) })
	return rg
}

// stop stops the gateway gracefully and returns Run's result.
func (rg *runningGateway) stop(t testing.TB) error {
	t.Helper()
	rg.cancel()
	select {
	case err := <-rg.done:
		rg.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not stop within 60 s")
		return nil
	}
}

// get fetches an HTTP endpoint of the gateway.
func (rg *runningGateway) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + rg.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
