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

// TestPoisonCrashLoopIsSetAside: on a classic queue, an item that kills the
// gateway process while it is in flight (here a SIGKILL each time it was
// written, with the server's answers held so that it is never
// acknowledged) is set aside after amqp.delivery_limit deliveries counted
// across restarts, instead of crashing every new process forever. Limit 3:
// the first process writes it (delivery 1) and dies, the second writes it
// alone (2) and dies, the third dead-letters it (3) without writing it.
func TestPoisonCrashLoopIsSetAside(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	q.declare(t)
	proxy := harness.StartProxy(t, p.ComponentAddr)
	// Once the server has accepted a session, nothing more it says reaches
	// the gateway: the item's barrier is never answered.
	proxy.StallAfter(harness.Down, "<handshake")
	gp := newGatewayProcess(t, p, q, "server="+proxy.Addr, "keepalive=10m", "limit=3")
	publishItems(t, q.out, "crash-", [][]byte{mustJSON(t, outItem{Target: p.JID("alice"), Text: "crash me"})})

	copies := 0
	for process := 1; process <= 3; process++ {
		if process == 3 {
			proxy.StallAfter(harness.Down, "") // the last one may finish its work
		}
		gp.start(t)
		if process == 3 {
			break
		}
		if m := recv(t, alice, 60*time.Second); m.Body != "crash me" {
			t.Fatalf("process %d: got %q", process, m.Body)
		}
		copies++
		if err := gp.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = gp.cmd.Wait()
	}
	dead := harness.Get(t, q.dead, 1, 60*time.Second)
	if len(dead) != 1 {
		t.Fatal("the item was not dead-lettered")
	}
	if reason, _ := dead[0].Headers[queue.ErrorHeader].(string); !strings.HasPrefix(reason, "delivery_limit: delivered 3 times") {
		t.Fatalf("dead-letter reason %q, want delivery_limit after 3 deliveries", reason)
	}
	waitFor(t, 30*time.Second, "out queue empty", func() bool { return harness.QueueLen(t, q.out) == 0 })
	select {
	case m := <-alice.Messages():
		t.Fatalf("the third process wrote the item: %q", m.Body)
	default:
	}
	t.Logf("set aside by the third process after %d copies reached alice", copies)
}
