package integration

import (
	"fmt"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestHotStandby runs two gateways on the same component and queues: the
// second waits (the server accepts one connection per component, and the
// queue has a single active consumer) and takes over when the first stops.
func TestHotStandby(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	primary := startGateway(t, gatewayConfig(t, p, q))
	standby := startGatewayNoWait(t, gatewayConfig(t, p, q))
	// The server refused it (component conflict): it says it stands by.
	waitFor(t, 30*time.Second, "the standby standing by", func() bool { return metricValue(t, standby, "xmppgw_standby") == 1 })
	if standby.Ready() {
		t.Fatal("the standby is ready while the primary holds the component")
	}
	bodies, _ := numberedItems(t, "primary", p.JID("alice"), 100)
	publishItems(t, q.out, "p-", bodies)
	for i := 0; i < 100; i++ {
		if m := recv(t, alice, 10*time.Second); m.Body != fmt.Sprintf("primary %d", i) {
			t.Fatalf("got %q", m.Body)
		}
	}
	if err := primary.stop(t); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 40*time.Second, "standby takes over", standby.Ready)
	bodies, _ = numberedItems(t, "standby", p.JID("alice"), 100)
	publishItems(t, q.out, "s-", bodies)
	for i := 0; i < 100; i++ {
		if m := recv(t, alice, 10*time.Second); m.Body != fmt.Sprintf("standby %d", i) {
			t.Fatalf("got %q", m.Body)
		}
	}
}
