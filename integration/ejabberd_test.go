package integration

import (
	"context"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestEjabberd runs the gateway beside ejabberd 23.01, configured from
// configs/servers/ejabberd-component.yml: items out in order (the barrier
// echo works there too), messages in as events.
func TestEjabberd(t *testing.T) {
	e := harness.StartEjabberd(t, map[string]string{"alice": "alice-pass"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, err := harness.Dial(ctx, e.C2SAddr, e.JID("alice"), "alice-pass")
	if err != nil {
		t.Fatalf("client login on ejabberd: %v", err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	q := newQueues(t)
	gw := startGateway(t, componentConfig(t, e.ComponentAddr, e.ComponentDomain, e.Secret, q))

	const n = 500
	bodies, texts := numberedItems(t, "ejabberd", e.JID("alice"), n)
	publishItems(t, q.out, "ej-", bodies)
	for i := 0; i < n; i++ {
		if m := recv(t, alice, 15*time.Second); m.Body != texts[i] || m.From != "notices@"+e.ComponentDomain {
			t.Fatalf("message %d: %q from %q, want %q", i, m.Body, m.From, texts[i])
		}
	}
	waitFor(t, 10*time.Second, "all acknowledged", func() bool {
		return metricValue(t, gw, `xmppgw_outbound_items_total{result="sent"}`) == n && harness.QueueLen(t, q.out) == 0
	})

	if err := alice.Send(ctx, "notices@"+e.ComponentDomain, "hello ejabberd"); err != nil {
		t.Fatal(err)
	}
	ev := decodeEvent(t, harness.Drain(t, q.in, 1, 10*time.Second)[0])
	if ev.Kind != "message" || ev.Text != "hello ejabberd" || ev.From != alice.JID.String() {
		t.Fatalf("event = %+v", ev)
	}
}
