package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"xmppgw/gateway"
	"xmppgw/integration/harness"
)

// TestReloadChangesRateAndRoutes reloads a running gateway: the new rate
// and the new route apply at once, and nothing is dropped on the way.
func TestReloadChangesRateAndRoutes(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	cfg := gatewayConfig(t, p, q)
	gw := startGateway(t, cfg)
	target := p.JID("alice")

	// Unlimited: 300 items arrive quickly.
	bodies, _ := numberedItems(t, "fast", target, 300)
	start := time.Now()
	publishItems(t, q.out, "fast-", bodies)
	for i := 0; i < 300; i++ {
		if m := recv(t, alice, 10*time.Second); m.Body != fmt.Sprintf("fast %d", i) {
			t.Fatalf("fast %d: got %q", i, m.Body)
		}
	}
	fast := time.Since(start)

	// 40 per second, and a new route.
	sales := harness.UniqueQueue(t, "sales")
	next := *cfg
	next.Outbound.Rate = 40
	next.Inbound.Routes = map[string]string{"sales": sales}
	gw.Reload(&next)
	bodies, _ = numberedItems(t, "slow", target, 80)
	start = time.Now()
	publishItems(t, q.out, "slow-", bodies)
	for i := 0; i < 80; i++ {
		if m := recv(t, alice, 10*time.Second); m.Body != fmt.Sprintf("slow %d", i) {
			t.Fatalf("slow %d: got %q", i, m.Body)
		}
	}
	slow := time.Since(start)
	t.Logf("300 items unlimited in %s; 80 items at 40/s in %s", fast.Round(time.Millisecond), slow.Round(time.Millisecond))
	if slow < 1700*time.Millisecond { // (80 - burst 2) / 40 per s ≈ 1.95 s
		t.Fatalf("80 items at 40/s took %s: the rate was not applied", slow)
	}
	if err := alice.Send(context.Background(), "sales@"+p.ComponentDomain, "to the new route"); err != nil {
		t.Fatal(err)
	}
	if ev := decodeEvent(t, harness.Drain(t, sales, 1, 10*time.Second)[0]); ev.Text != "to the new route" {
		t.Fatalf("event on the new route: %+v", ev)
	}
	if n := harness.QueueLen(t, q.out); n != 0 {
		t.Fatalf("%d items left in the outbound queue", n)
	}
}

// TestSIGHUPReload sends SIGHUP to the gateway process: a bad file keeps the
// running config and says why; a good one is applied and logged.
func TestSIGHUPReload(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{})
	q := newQueues(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "xmppgw.yaml")
	base := fmt.Sprintf("xmpp:\n  server: %s\n  domain: %s\n  secret: %s\namqp:\n  out_queue: %s\n  in_queue: %s\n  dead_letter_queue: %s\npresence:\n  store: %s\nhttp:\n  listen: 127.0.0.1:%d\n",
		p.ComponentAddr, p.ComponentDomain, p.Secret, q.out, q.in, q.dead, filepath.Join(dir, "db"), harness.FreePort(t))
	write := func(extra string) {
		if err := os.WriteFile(cfgFile, []byte(base+extra), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	gp := &gatewayProcess{bin: harness.BuildBinary(t), cfg: cfgFile, log: logf}
	gp.start(t)
	t.Cleanup(func() {
		_ = gp.cmd.Process.Signal(syscall.SIGTERM)
		_ = gp.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("gateway log:\n%s", b)
		}
	})
	logHas := func(what string) bool {
		b, _ := os.ReadFile(logf.Name())
		return strings.Contains(string(b), what)
	}
	waitFor(t, 20*time.Second, "gateway connected", func() bool { return logHas("consuming") })

	write("outbound:\n  rate: -5\n")
	if err := gp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reload refused", func() bool {
		return logHas("reload failed; keeping the running config") && logHas("outbound.rate")
	})

	// A live key and one that needs a restart.
	base = strings.Replace(base, "xmpp:\n", "xmpp:\n  keepalive: 10s\n", 1)
	write("outbound:\n  rate: 50\n")
	if _, err := gateway.LoadConfig(cfgFile); err != nil {
		t.Fatal(err)
	}
	if err := gp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reload applied", func() bool {
		return logHas("config reloaded") && logHas("applied=outbound.rate") && logHas("xmpp.keepalive")
	})

	// Connection events are logged, secrets never.
	for _, want := range []string{"xmpp connected", "amqp connected", "consuming"} {
		if !logHas(want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if logHas(p.Secret) || logHas("guest:guest") {
		t.Error("the log contains the component secret or the broker password")
	}
}
