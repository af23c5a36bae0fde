package integration

import (
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestOutQueueDeletedIsDeclaredAgain: the broker cancels the gateway's
// consumer when the out queue is deleted (basic.cancel); the gateway
// declares it again, consumes again, and items published to it arrive.
func TestOutQueueDeletedIsDeclaredAgain(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	rg := startGateway(t, gatewayConfig(t, p, q))
	harness.PublishJSON(t, q.out, map[string]any{"target": alice.JID.Bare().String(), "text": "before"})
	if m := recv(t, alice, 30*time.Second); m.Body != "before" {
		t.Fatalf("got %q", m.Body)
	}
	reconnects := metricValue(t, rg, `xmppgw_reconnects_total{link="amqp"}`)
	ch := harness.Channel(t)
	if _, err := ch.QueueDelete(q.out, false, false, false); err != nil {
		t.Fatal(err)
	}
	// The queue comes back, declared by the gateway, with a consumer.
	waitFor(t, 60*time.Second, "the out queue declared and consumed again", func() bool {
		c, err := harness.AMQPConn(t).Channel()
		if err != nil {
			return false
		}
		defer c.Close()
		st, err := c.QueueDeclarePassive(q.out, true, false, false, false, nil)
		return err == nil && st.Consumers == 1
	})
	if v := metricValue(t, rg, `xmppgw_reconnects_total{link="amqp"}`); v <= reconnects {
		t.Errorf("reconnects{amqp} %v → %v: the cancel was not counted", reconnects, v)
	}
	harness.PublishJSON(t, q.out, map[string]any{"target": alice.JID.Bare().String(), "text": "after"})
	if m := recv(t, alice, 30*time.Second); m.Body != "after" {
		t.Fatalf("got %q", m.Body)
	}
}
