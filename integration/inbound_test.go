package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
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
	Status     string          `json:"status"`
	Replace    string          `json:"replace"`
	Encrypted  string          `json:"encrypted"`
	Room       string          `json:"room"`
	Nick       string          `json:"nick"`
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
	// counted, and the sender is told. The message asked for a receipt:
	// refused, it gets its error and never a receipt.
	harness.DeleteQueues(t, shop)
	withReceipt := func(to, id, text string) string {
		return fmt.Sprintf(`<message to='%s@%s' type='chat' id='%s'><body>%s</body><request xmlns='urn:xmpp:receipts'/></message>`, to, p.ComponentDomain, id, text)
	}
	if err := alice.SendRaw(ctx, withReceipt("shop", "void-1", "into the void")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, alice, 10*time.Second)
	if m.Type != "error" || m.ID != "void-1" || !strings.Contains(m.Raw, "resource-constraint") {
		t.Fatalf("want a wait error for the unroutable event, got %s", m.Raw)
	}
	if v := metricValue(t, gw, `xmppgw_inbound_refused_total{reason="returned"}`); v != 1 {
		t.Fatalf("refused{returned} = %v", v)
	}
	// A kept message behind it: its receipt comes after any the refused one
	// could have had (receipts follow confirms, in order).
	if err := alice.SendRaw(ctx, withReceipt("support", "kept-1", "kept")); err != nil {
		t.Fatal(err)
	}
	for {
		m := recv(t, alice, 10*time.Second)
		a, isReceipt := childAttrs(t, m.Raw, "urn:xmpp:receipts", "received")
		if !isReceipt {
			t.Fatalf("want the receipt for kept-1, got %s", m.Raw)
		}
		if a["id"] == "void-1" {
			t.Fatalf("the refused message got a receipt: %s", m.Raw)
		}
		if a["id"] == "kept-1" {
			break
		}
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

// TestInboundBrokerLossEveryMessageQueuedOrRefused loses the broker while
// events are outstanding, by construction rather than by timing: the
// gateway's broker link goes through a proxy; after 1,000 events were
// confirmed the proxy stops forwarding what the gateway writes, 500 more
// messages are sent and a ping round trip through the gateway proves it has
// read them all (none can be confirmed now); only then does the broker close
// the gateway's connections and the proxy drop them. Every message must end
// as an event in the queue or an error to its sender.
func TestInboundBrokerLossEveryMessageQueuedOrRefused(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not found: run .ci/setup")
	}
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	u, err := url.Parse(harness.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := harness.StartProxy(t, u.Host)
	cfg := gatewayConfig(t, p, q)
	u.Host = proxy.Addr
	cfg.AMQP.URL = u.String()
	gw := startGateway(t, cfg)
	to := "notices@" + p.ComponentDomain
	events := func() float64 {
		return metricOrZero(t, gw, `xmppgw_inbound_events_total{kind="message",route="default"}`)
	}

	ctx := context.Background()
	sent := 0
	send := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			raw := fmt.Sprintf(`<message type='chat' id='loss-%d' to='%s'><body>loss %d</body></message>`, sent, to, sent)
			if err := alice.SendRaw(ctx, raw); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	const before, during, after = 1000, 500, 500
	send(before)
	waitFor(t, 60*time.Second, "the first events confirmed", func() bool { return events() >= before })

	proxy.Stall(harness.Up)
	send(during)
	// The component answers the ping after it has handled every message
	// before it: all of them are in the gateway now, none confirmed.
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	reply, err := alice.SendIQ(pctx, fmt.Sprintf(`<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, p.ComponentDomain))
	cancel()
	if err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("ping through the gateway: %v %s", err, reply)
	}
	outstanding := float64(sent) - events()
	if outstanding <= 0 {
		t.Fatalf("no event outstanding when the broker goes away (%v confirmed of %d): the test would prove nothing", events(), sent)
	}
	if closed := closeBrokerConnections(t, q.out); closed == 0 {
		t.Fatal("found no broker connection of the gateway to close")
	}
	proxy.Cut()
	waitFor(t, 60*time.Second, "gateway ready again", gw.Ready)
	send(after)

	// Every message is an event in the queue or was answered with an error.
	queued, refused := map[string]bool{}, map[string]bool{}
	deadline := time.Now().Add(40 * time.Second)
	accounted := func() int {
		n := 0
		for i := 0; i < sent; i++ {
			id := fmt.Sprintf("loss-%d", i)
			if queued[id] || refused[id] {
				n++
			}
		}
		return n
	}
	for accounted() < sent {
		for _, d := range harness.Get(t, q.in, sent, 0) {
			queued[decodeEvent(t, d).ID] = true
		}
	drain:
		for {
			select {
			case m := <-alice.Messages():
				if m.Type == "error" {
					refused[m.ID] = true
				}
			default:
				break drain
			}
		}
		if time.Now().After(deadline) {
			var missing []string
			for i := 0; i < sent && len(missing) < 10; i++ {
				id := fmt.Sprintf("loss-%d", i)
				if !queued[id] && !refused[id] {
					missing = append(missing, id)
				}
			}
			t.Fatalf("%d queued + %d refused of %d; neither, e.g.: %v", len(queued), len(refused), sent, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%.0f outstanding at the loss; %d queued, %d refused with an error, %d both (refused, then confirmed late)",
		outstanding, len(queued), len(refused), overlap(queued, refused))
	var byReason float64
	for _, r := range []string{"broker_down", "closed", "timeout", "nacked"} {
		byReason += metricOrZero(t, gw, fmt.Sprintf(`xmppgw_inbound_refused_total{reason=%q}`, r))
	}
	if byReason < float64(len(refused)) {
		t.Errorf("refused metrics = %v, want ≥ %d", byReason, len(refused))
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
