package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/integration/harness"
)

// event is an inbound event as workers read it.
type event struct {
	Kind       string          `json:"kind"`
	ID         string          `json:"id"`
	From       string          `json:"from"`
	To         string          `json:"to"`
	Type       string          `json:"type"`
	Text       string          `json:"text"`
	Subject    string          `json:"subject"`
	Thread     string          `json:"thread"`
	Payload    json.RawMessage `json:"payload"`
	Condition  string          `json:"condition"`
	ReceivedAt string          `json:"received_at"`
}

func decodeEvent(t testing.TB, d amqp.Delivery) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(d.Body, &ev); err != nil {
		t.Fatalf("event is not JSON: %v: %s", err, d.Body)
	}
	return ev
}

func TestInboundMessagesBecomeEventsInOrder(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	startGateway(t, gatewayConfig(t, p, q))
	to := "support@" + p.ComponentDomain

	const n = 1000
	ctx := context.Background()
	for i := 0; i < n; i++ {
		var raw string
		switch i % 4 {
		case 0:
			raw = fmt.Sprintf(`<message type='chat' id='in-%d' to='%s'><body>hello %d &lt;&amp;&gt; 🎉 שלום</body></message>`, i, to, i)
		case 1:
			raw = fmt.Sprintf(`<message id='in-%d' to='%s'><subject>s%d</subject><thread>t%d</thread><body>normal %d</body></message>`, i, to, i, i, i)
		case 2:
			raw = fmt.Sprintf(`<message type='chat' id='in-%d' to='%s'><json xmlns='urn:xmpp:json:0'>{"i":%d,"s":"&lt;x&gt;"}</json></message>`, i, to, i)
		case 3:
			// A chat state between messages is not an event.
			raw = fmt.Sprintf(`<message type='chat' id='cs-%d' to='%s'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`+
				`<message type='headline' id='in-%d' to='%s'><body>headline %d</body></message>`, i, to, i, to, i)
		}
		if err := alice.SendRaw(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	got := harness.Drain(t, q.in, n, 60*time.Second)
	for i, d := range got {
		ev := decodeEvent(t, d)
		wantID := fmt.Sprintf("in-%d", i)
		if ev.Kind != "message" || ev.ID != wantID || d.MessageId != wantID || d.Type != "message" ||
			d.ContentType != "application/json" || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("event %d: kind %q id %q message_id %q type %q content_type %q mode %d", i, ev.Kind, ev.ID, d.MessageId, d.Type, d.ContentType, d.DeliveryMode)
		}
		if ev.From != alice.JID.String() || ev.To != to {
			t.Fatalf("event %d: from %q to %q, want %q → %q", i, ev.From, ev.To, alice.JID, to)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.ReceivedAt); err != nil || d.Timestamp.IsZero() {
			t.Fatalf("event %d: received_at %q (%v), timestamp %v", i, ev.ReceivedAt, err, d.Timestamp)
		}
		switch i % 4 {
		case 0:
			if ev.Type != "chat" || ev.Text != fmt.Sprintf("hello %d <&> 🎉 שלום", i) || ev.Payload != nil {
				t.Fatalf("event %d: %+v", i, ev)
			}
		case 1:
			if ev.Type != "normal" || ev.Text != fmt.Sprintf("normal %d", i) || ev.Subject != fmt.Sprintf("s%d", i) || ev.Thread != fmt.Sprintf("t%d", i) {
				t.Fatalf("event %d: %+v", i, ev)
			}
		case 2:
			if ev.Text != "" || string(ev.Payload) != fmt.Sprintf(`{"i":%d,"s":"<x>"}`, i) {
				t.Fatalf("event %d: text %q payload %s", i, ev.Text, ev.Payload)
			}
			if strings.Contains(string(d.Body), `"text"`) {
				t.Fatalf("event %d carries an empty text field: %s", i, d.Body)
			}
		case 3:
			if ev.Type != "headline" || ev.Text != fmt.Sprintf("headline %d", i) {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
	}
	select {
	case m := <-alice.Messages():
		if m.Type == "error" {
			t.Fatalf("alice got an error back: %s", m.Raw)
		}
	default:
	}
}

func TestInboundRoutesSplitSites(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	shop, support := harness.UniqueQueue(t, "shop"), harness.UniqueQueue(t, "support")
	cfg := gatewayConfig(t, p, q)
	cfg.Inbound.Routes = map[string]string{"shop": shop, "support": support}
	gw := startGateway(t, cfg)

	ctx := context.Background()
	for i := 0; i < 30; i++ {
		local := []string{"shop", "support", "other"}[i%3]
		if err := alice.Send(ctx, local+"@"+p.ComponentDomain, fmt.Sprintf("%s %d", local, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ queue, local string }{{shop, "shop"}, {support, "support"}, {q.in, "other"}} {
		for j, d := range harness.Drain(t, c.queue, 10, 20*time.Second) {
			ev := decodeEvent(t, d)
			if want := fmt.Sprintf("%s %d", c.local, 3*j+map[string]int{"shop": 0, "support": 1, "other": 2}[c.local]); ev.Text != want {
				t.Fatalf("queue %s event %d: %q, want %q", c.queue, j, ev.Text, want)
			}
		}
	}
	waitFor(t, 5*time.Second, "route metrics", func() bool {
		return metricValue(t, gw, `xmppgw_inbound_events_total{kind="message",route="shop"}`) == 10 &&
			metricValue(t, gw, `xmppgw_inbound_events_total{kind="message",route="support"}`) == 10 &&
			metricValue(t, gw, `xmppgw_inbound_events_total{kind="message",route="default"}`) == 10
	})

	// A route whose queue disappears: the event is returned as unroutable,
	// counted, and the sender is told.
	harness.DeleteQueues(t, shop)
	if err := alice.Send(ctx, "shop@"+p.ComponentDomain, "into the void"); err != nil {
		t.Fatal(err)
	}
	m := recv(t, alice, 10*time.Second)
	if m.Type != "error" || !strings.Contains(m.Raw, "resource-constraint") {
		t.Fatalf("want a wait error for the unroutable event, got %s", m.Raw)
	}
	if v := metricValue(t, gw, `xmppgw_inbound_refused_total{reason="returned"}`); v != 1 {
		t.Fatalf("refused{returned} = %v", v)
	}
}

// closeBrokerConnections closes the broker connections whose name contains
// marker (the gateway names them after its outbound queue), as an outage
// would, with rabbitmqctl.
func closeBrokerConnections(t testing.TB, marker string) int {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_connections", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		pid := strings.Fields(line)[0]
		if out, err := exec.Command("rabbitmqctl", "-q", "close_connection", pid, "test outage").CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl close_connection %s: %v: %s", pid, err, out)
		}
		n++
	}
	return n
}

func TestInboundBrokerLossEveryMessageQueuedOrRefused(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not found: run .ci/setup")
	}
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))
	to := "notices@" + p.ComponentDomain

	// About 2,000 messages a second for 3 s, so that the outage (the
	// gateway redials after ≥ 250 ms) falls in the middle of the flow.
	const n = 6000
	ctx := context.Background()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			raw := fmt.Sprintf(`<message type='chat' id='loss-%d' to='%s'><body>loss %d</body></message>`, i, to, i)
			if err := alice.SendRaw(ctx, raw); err != nil {
				return
			}
			if i%10 == 9 {
				<-tick.C
			}
		}
	}()
	waitFor(t, 20*time.Second, "events flowing", func() bool {
		return metricValue(t, gw, `xmppgw_inbound_events_total{kind="message",route="default"}`) > 1000
	})
	if closed := closeBrokerConnections(t, q.out); closed == 0 {
		t.Fatal("found no broker connection of the gateway to close")
	}
	<-sent
	waitFor(t, 30*time.Second, "gateway ready again", gw.Ready)

	// Every message is an event in the queue or was answered with an error.
	queued := map[string]bool{}
	for _, d := range harness.Get(t, q.in, n+100, 5*time.Second) {
		queued[decodeEvent(t, d).ID] = true
	}
	refused := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(queued)+len(refused) < n {
		select {
		case m := <-alice.Messages():
			if m.Type == "error" {
				refused[m.ID] = true
			}
		case <-deadline:
			var missing []string
			for i := 0; i < n && len(missing) < 10; i++ {
				id := fmt.Sprintf("loss-%d", i)
				if !queued[id] && !refused[id] {
					missing = append(missing, id)
				}
			}
			t.Fatalf("%d queued + %d refused of %d; neither, e.g.: %v", len(queued), len(refused), n, missing)
		}
	}
	t.Logf("%d queued, %d refused with an error, %d both (refused, then confirmed late)", len(queued), len(refused), overlap(queued, refused))
	if len(refused) == 0 {
		t.Fatal("no message was refused: the outage did not fall within the flow, the test proved nothing")
	}
	if v := metricOrZero(t, gw, `xmppgw_inbound_refused_total{reason="broker_down"}`) + metricOrZero(t, gw, `xmppgw_inbound_refused_total{reason="closed"}`); v < float64(len(refused)) {
		t.Errorf("refused metrics (broker_down + closed) = %v, want ≥ %d", v, len(refused))
	}
}

func overlap(a, b map[string]bool) int {
	n := 0
	for k := range a {
		if b[k] {
			n++
		}
	}
	return n
}

func TestInboundGoodCitizenIQ(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	startGateway(t, gatewayConfig(t, p, q))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, tc := range []struct {
		to, iq   string
		wantType string
		want     []string
	}{
		0: {p.ComponentDomain, `<query xmlns='http://jabber.org/protocol/disco#info'/>`, "result",
			[]string{"identity", "urn:xmpp:ping", "jabber:iq:version", "http://jabber.org/protocol/disco#info"}},
		1: {p.ComponentDomain, `<ping xmlns='urn:xmpp:ping'/>`, "result", nil},
		2: {p.ComponentDomain, `<query xmlns='jabber:iq:version'/>`, "result", []string{"xmppgw", "test"}},
		3: {p.ComponentDomain, `<query xmlns='jabber:iq:roster'/>`, "error", []string{"service-unavailable"}},
		4: {"notices@" + p.ComponentDomain, `<vCard xmlns='vcard-temp'/>`, "error", []string{"service-unavailable"}},
	} {
		reply, err := alice.SendIQ(ctx, fmt.Sprintf(`<iq type='get' to='%s'>%s</iq>`, tc.to, tc.iq))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if typ := harness.IQType(reply); typ != tc.wantType {
			t.Fatalf("%d: reply type %q, want %q: %s", i, typ, tc.wantType, reply)
		}
		for _, w := range tc.want {
			if !strings.Contains(reply, w) {
				t.Errorf("%d: reply lacks %q: %s", i, w, reply)
			}
		}
	}
	reply, err := alice.SendIQ(ctx, fmt.Sprintf(`<iq type='set' to='%s'><query xmlns='jabber:iq:private'/></iq>`, p.ComponentDomain))
	if err != nil || harness.IQType(reply) != "error" || !strings.Contains(reply, "service-unavailable") {
		t.Fatalf("iq set: %v %s", err, reply)
	}
}
