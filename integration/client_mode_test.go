package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestClientMode runs the gateway as a normal account (c2s): items reach a
// user from the account's JID, and messages to the account become events.
func TestClientMode(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass", "bot": "bot-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	cfg := writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: client
  server: %s
  jid: bot@%s/gw
  password: bot-pass
  tls: disabled
  keepalive: 5s
`, p.C2SAddr, p.Domain)+restOfConfig(t, q))
	gw := startGateway(t, cfg)

	bodies := [][]byte{
		mustJSON(t, outItem{Target: p.JID("alice"), Text: "from the bot"}),
		mustJSON(t, outItem{Target: p.JID("alice"), Text: "spoofed", From: "notices@" + p.ComponentDomain}),
		mustJSON(t, outItem{Target: p.JID("alice"), Text: "second"}),
	}
	publishItems(t, q.out, "client-", bodies)
	for _, want := range []string{"from the bot", "second"} {
		m := recv(t, alice, 10*time.Second)
		if m.Body != want || !strings.HasPrefix(m.From, "bot@"+p.Domain) {
			t.Fatalf("got %q from %q, want %q from the bot", m.Body, m.From, want)
		}
	}
	dead := harness.Drain(t, q.dead, 1, 10*time.Second)
	if r, _ := dead[0].Headers["x-xmppgw-error"].(string); !strings.HasPrefix(r, "forbidden_from") {
		t.Fatalf("dead letter reason %q", r)
	}

	if err := alice.Send(context.Background(), "bot@"+p.Domain, "hi bot"); err != nil {
		t.Fatal(err)
	}
	ev := decodeEvent(t, harness.Drain(t, q.in, 1, 10*time.Second)[0])
	if ev.Kind != "message" || ev.Text != "hi bot" || ev.From != alice.JID.String() || !strings.HasPrefix(ev.To, "bot@"+p.Domain) {
		t.Fatalf("event = %+v", ev)
	}
	if v := metricValue(t, gw, `xmppgw_connected{link="xmpp"}`); v != 1 {
		t.Fatalf("connected = %v", v)
	}
}
