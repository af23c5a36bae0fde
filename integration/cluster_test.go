package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppgw/gateway"
	"xmppgw/integration/harness"
	"xmppgw/queue"
)

// Sizes of the cluster test: the node leading the out queue is killed
// after clusterFaultAt items arrived; the last clusterHeld items are
// published only once the gateway has recovered.
const (
	clusterItems   = 4000
	clusterFaultAt = 600
	clusterHeld    = 500
	clusterInbound = 300 // inbound messages per phase (before, during, after)
)

// TestRabbitCluster runs the gateway on a real 3-node RabbitMQ cluster on
// loopback with quorum queues, amqp.url listing the three nodes. While
// items flow out and messages flow in, the node that leads the out queue
// (and holds the gateway's connections) is killed (SIGKILL, a crash; a
// rabbitmqctl stop_app takes from 2 to 20 s to start on a busy machine, and
// the flow would be over before the fault): every item is delivered at
// least once, every inbound message is queued (or refused back to its
// sender, never lost), and the time to recover is logged.
func TestRabbitCluster(t *testing.T) {
	// A broker heartbeat of 4 s, as in the fault matrix.
	cl := harness.StartRabbitCluster(t, 3, harness.RabbitMQOptions{Heartbeat: 4})
	t.Logf("3-node cluster %v formed in %s", cl.NodeNames(), cl.FormTime.Round(time.Millisecond))
	first := cl.Nodes[0]
	// The test's own connection (publishing items, reading events) goes
	// to the first node until the fault, then to a node that stays.
	harness.UseBroker(t, first.URL)

	p, col, q := clusterProsody(t)
	cfg := clusterConfig(t, p, q, cl.URLs())
	// Declared through the first node: RabbitMQ 3.10 places a quorum
	// queue's leader on the node its declarer is connected to, and the
	// gateway too connects to the first node, so that stopping the leader
	// also takes the gateway's connections away.
	if err := queue.Declare(harness.AMQPConn(t), cfg.Topology()); err != nil {
		t.Fatal(err)
	}
	var leader string
	waitFor(t, 30*time.Second, "the out queue's leader", func() bool {
		var err error
		leader, err = first.QueueLeader(q.out)
		return err == nil
	})
	victim := cl.Node(leader)
	if victim == nil {
		t.Fatalf("the out queue's leader %s is not a node of the cluster %v", leader, cl.NodeNames())
	}
	survivor := cl.Nodes[1]
	if victim == survivor {
		survivor = cl.Nodes[2]
	}

	gw := startGateway(t, cfg)
	in := newInFlow(t, p, "bob", "in-cluster")
	in.send(t, clusterInbound)
	// Where the gateway's connections are (looked up before the items
	// flow: each rabbitmqctl takes a second or two).
	var onNode map[string]int
	waitFor(t, 60*time.Second, "the gateway's consumer and publisher on the first node of amqp.url", func() bool {
		onNode = map[string]int{}
		for _, r := range cl.Nodes {
			pids, err := r.NodeConnections(q.out)
			if err != nil {
				t.Fatal(err)
			}
			onNode[r.Node] = len(pids)
		}
		return onNode[first.Node] == 2
	})
	t.Logf("out queue %s led by %s; the gateway's connections per node: %v", q.out, leader, onNode)

	bodies, texts := numberedItems(t, "cluster", p.JID("alice"), clusterItems)
	publishItems(t, q.out, "cluster-", bodies[:clusterItems-clusterHeld])
	waitFor(t, 90*time.Second, "items flowing", func() bool { return delivered(col) >= clusterFaultAt })
	// From now on the test talks to a node that stays.
	harness.UseBroker(t, survivor.URL)
	_ = harness.AMQPConn(t).Close() // the next helper call dials the survivor

	reconnects := metricOrZero(t, gw, `xmppgw_reconnects_total{link="amqp"}`)
	c := inject()
	victim.Kill()
	if d := delivered(col); d >= clusterItems-clusterHeld {
		t.Fatalf("all %d items were delivered before the leader was killed: the fault did not hit the flow", d)
	}
	detected := c.until(t, 60*time.Second, "the gateway to notice", func() bool {
		return metricValue(t, gw, `xmppgw_connected{link="amqp"}`) == 0 ||
			metricOrZero(t, gw, `xmppgw_reconnects_total{link="amqp"}`) > reconnects
	})
	in.send(t, clusterInbound) // while the cluster elects a new leader
	resumed := flowing(col)
	recovered := c.until(t, 120*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	var newLeader string
	waitFor(t, 60*time.Second, "a new leader of the out queue", func() bool {
		l, err := survivor.QueueLeader(q.out)
		newLeader = l
		return err == nil && l != leader
	})
	publishItems(t, q.out, "cluster-held-", bodies[clusterItems-clusterHeld:])
	in.send(t, clusterInbound)

	e := &faultEnv{t: t, node: survivor, row: &faultRow{fault: "cluster: out queue's leader killed"}}
	e.settleOutbound(col, texts, 120*time.Second)
	e.account(in, q.in, 60*time.Second)
	r := e.row
	t.Logf("cluster failover: leader %s killed, noticed after %s (new leader %s); flow resumed %s after the kill; "+
		"out: %d items, %d delivered, %d duplicates, %d lost; in: %d sent, %d queued, %d refused, %d lost",
		leader, detected.Round(time.Millisecond), newLeader, recovered.Round(time.Millisecond),
		r.items, r.delivered, r.dups, r.lost, r.inSent, r.inQueued, r.inRef, r.inLost)
	// Refusals are for the messages that came while the gateway had no
	// broker; before the fault and after the recovery every one is queued.
	if r.inQueued < 2*clusterInbound {
		t.Errorf("%d inbound messages queued, want at least the %d sent before the fault and after the recovery", r.inQueued, 2*clusterInbound)
	}
	if onNode[victim.Node] > 0 {
		// The gateway lost its connections with the node: it must have
		// failed over to another node of the list.
		if n := metricOrZero(t, gw, `xmppgw_reconnects_total{link="amqp"}`); n <= reconnects {
			t.Errorf("amqp reconnects = %v, want > %v (the gateway was on the killed node)", n, reconnects)
		}
		for _, r := range cl.Nodes {
			if r == victim {
				continue
			}
			if pids, err := r.NodeConnections(q.out); err == nil && len(pids) > 0 {
				t.Logf("after the fault: %d gateway connections on %s", len(pids), r.Node)
			}
		}
	}
	if n := harness.QueueLen(t, q.out); n != 0 {
		t.Errorf("%d items left in the out queue", n)
	}
}

// clusterProsody is a Prosody with alice online through a collector, and
// the queues of the test (uniquely named; declared by the test).
func clusterProsody(t *testing.T) (*harness.Prosody, *collector, queues) {
	t.Helper()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	col := collect(t, p, "alice", "alice-pass")
	waitFor(t, 10*time.Second, "client online", func() bool { _, _, d := col.counts(); return d > 0 })
	return p, col, newQueues(t)
}

// clusterConfig is a component config for p whose amqp.url lists the
// cluster's nodes, with quorum queues, paced so that items still flow when
// the fault comes.
func clusterConfig(t *testing.T, p *harness.Prosody, q queues, urls string) *gateway.Config {
	t.Helper()
	return writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
amqp:
  url: %s
  queue_type: quorum
  prefetch: 100
  out_queue: %s
  in_queue: %s
  dead_letter_queue: %s
outbound:
  rate: 400
presence:
  store: %s
http:
  listen: 127.0.0.1:0
log:
  level: debug
`, p.ComponentAddr, p.ComponentDomain, p.Secret, strings.ReplaceAll(urls, ",", ", "), q.out, q.in, q.dead,
		filepath.Join(t.TempDir(), "xmppgw.db")))
}
