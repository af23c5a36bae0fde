package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
	"xmppgw/queue"
)

// TestPoisonItemIsSetAside: an item that passes the gateway's checks but
// makes the XMPP server end the stream must not wedge the queue. Here the
// operator raised outbound.max_stanza_bytes above the server's own limit
// (Prosody: 512 KiB on the component port), so one item kills the stream
// each time it is written. The gateway isolates it on redelivery, blames
// it, and dead-letters it (delivery_limit) after a few stream deaths; the
// items around it all arrive.
func TestPoisonItemIsSetAside(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	q.declare(t)
	cfg := componentConfig(t, p.ComponentAddr, p.ComponentDomain, p.Secret, q)
	cfg.Outbound.MaxStanzaBytes = 2 << 20
	cfg.Outbound.MaxTextBytes = 2 << 20

	const good = 40
	var bodies [][]byte
	for i := range good {
		if i == good/2 {
			bodies = append(bodies, mustJSON(t, outItem{Target: p.JID("alice"), Text: "poison " + strings.Repeat("x", 700<<10)}))
		}
		bodies = append(bodies, mustJSON(t, outItem{Target: p.JID("alice"), Text: fmt.Sprintf("good %d", i)}))
	}
	publishItems(t, q.out, "poison-", bodies)
	start := time.Now()
	gw := startGatewayNoWait(t, cfg)

	seen := map[string]int{}
	deadline := time.After(90 * time.Second)
	for len(seen) < good {
		select {
		case m := <-alice.Messages():
			if strings.HasPrefix(m.Body, "poison") {
				t.Fatal("the poison item reached the recipient: the server took it after all")
			}
			seen[m.Body]++
		case <-deadline:
			t.Fatalf("after 90 s only %d of %d good items arrived", len(seen), good)
		}
	}
	dead := harness.Get(t, q.dead, 1, 30*time.Second)
	if len(dead) != 1 {
		t.Fatal("the poison item was not dead-lettered")
	}
	reason, _ := dead[0].Headers[queue.ErrorHeader].(string)
	if !strings.HasPrefix(reason, "delivery_limit: ") {
		t.Fatalf("dead-letter reason %q, want delivery_limit", reason)
	}
	took := time.Since(start)
	waitFor(t, 30*time.Second, "out queue empty", func() bool { return harness.QueueLen(t, q.out) == 0 })
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	reconnects := metricOrZero(t, gw, `xmppgw_reconnects_total{link="xmpp"}`)
	t.Logf("poison set aside after %s: %q; %d good items, %d duplicates, %v XMPP reconnects", took.Round(time.Millisecond), reason, good, dups, reconnects)
	if reconnects > 4 {
		t.Errorf("%v reconnects for one poison item, want at most 4", reconnects)
	}
}
