package integration

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// Delivery outcomes (XEP-0184 receipts, XEP-0333 markers, XEP-0308
// corrections, XEP-0359 origin-id, end-to-end encrypted messages) through
// a real Prosody and RabbitMQ, with the harness's client as the person.

// childAttrs returns the attributes of the first child element of the
// stanza raw named ns and local, and whether there is one.
func childAttrs(t testing.TB, raw, ns, local string) (map[string]string, bool) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, false
		}
		if err != nil {
			t.Fatalf("stanza %q: %v", raw, err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && e.Name.Space == ns && e.Name.Local == local {
				m := map[string]string{}
				for _, a := range e.Attr {
					m[a.Name.Local] = a.Value
				}
				return m, true
			}
		case xml.EndElement:
			depth--
		}
	}
}

// originID checks that m carries a XEP-0359 origin-id equal to its id and
// returns it.
func originID(t testing.TB, m harness.Msg) string {
	t.Helper()
	a, ok := childAttrs(t, m.Raw, "urn:xmpp:sid:0", "origin-id")
	if !ok || a["id"] != m.ID || m.ID == "" {
		t.Fatalf("message %q: origin-id %v (present %v), want its id: %s", m.ID, a, ok, m.Raw)
	}
	return a["id"]
}

// nextOutcome reads the next event from the in queue.
func nextOutcome(t testing.TB, queue string) event {
	t.Helper()
	got := harness.Get(t, queue, 1, 30*time.Second)
	if len(got) != 1 {
		t.Fatalf("no event in %s within 30 s", queue)
	}
	d := got[0]
	ev := decodeEvent(t, d)
	if d.Type != ev.Kind {
		t.Fatalf("event %s: AMQP type %q", d.Body, d.Type)
	}
	return ev
}

// TestDeliveryOutcomes: a message sent with receipt: true carries a receipt
// request, markable and its origin-id; the person's receipt and markers
// come back as receipt events, a stranger's receipt does not; a correction
// goes out with <replace/> and an inbound one carries replace; a message
// that asks for a receipt is answered once its event is queued; an OMEMO
// message becomes an encrypted event without its fallback body.
func TestDeliveryOutcomes(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass", "mallory": "mallory-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	mallory := harness.DialClient(t, p, "mallory", "mallory-pass")
	q := newQueues(t)
	rg := startGateway(t, gatewayConfig(t, p, q))
	ctx := context.Background()
	bot := "notices@" + p.ComponentDomain

	// Out: receipt requested.
	harness.PublishJSON(t, q.out, map[string]any{"target": alice.JID.Bare().String(), "text": "deploy 42 done", "id": "r-1", "receipt": true})
	m := recv(t, alice, 30*time.Second)
	if m.ID != "r-1" || m.From != bot || m.Body != "deploy 42 done" {
		t.Fatalf("alice got %+v", m)
	}
	originID(t, m)
	if _, ok := childAttrs(t, m.Raw, "urn:xmpp:receipts", "request"); !ok {
		t.Fatalf("no receipt request: %s", m.Raw)
	}
	if _, ok := childAttrs(t, m.Raw, "urn:xmpp:chat-markers:0", "markable"); !ok {
		t.Fatalf("not markable: %s", m.Raw)
	}

	// The stranger's receipt comes first; the events queue in order, so
	// once alice's last marker is in, a stranger's event would be too.
	for _, raw := range []string{
		fmt.Sprintf(`<message to='%s'><received xmlns='urn:xmpp:receipts' id='r-1'/></message>`, bot),
		fmt.Sprintf(`<message to='%s' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='r-1'/></message>`, bot),
	} {
		if err := mallory.SendRaw(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "the stranger's receipts counted", func() bool {
		return metricValue(t, rg, "xmppgw_receipts_unsolicited_total") >= 2
	})
	for _, raw := range []string{
		fmt.Sprintf(`<message to='%s'><received xmlns='urn:xmpp:receipts' id='r-1'/></message>`, bot),
		fmt.Sprintf(`<message to='%s' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='r-1'/></message>`, bot),
		fmt.Sprintf(`<message to='%s' type='chat'><acknowledged xmlns='urn:xmpp:chat-markers:0' id='r-1'/></message>`, bot),
		// a receipt for an id never sent with a request
		fmt.Sprintf(`<message to='%s'><received xmlns='urn:xmpp:receipts' id='r-unknown'/></message>`, bot),
	} {
		if err := alice.SendRaw(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, status := range []string{"received", "displayed", "acknowledged"} {
		ev := nextOutcome(t, q.in)
		if ev.Kind != "receipt" || ev.ID != "r-1" || ev.Status != status || ev.From != alice.JID.String() || ev.To != bot {
			t.Fatalf("want a %s receipt for r-1 from %s, got %+v", status, alice.JID, ev)
		}
	}

	// Out: a correction, with an id of its own.
	harness.PublishJSON(t, q.out, map[string]any{"target": alice.JID.Bare().String(), "text": "deploy 42 failed", "id": "r-2", "replace": "r-1"})
	m = recv(t, alice, 30*time.Second)
	if a, ok := childAttrs(t, m.Raw, "urn:xmpp:message-correct:0", "replace"); !ok || a["id"] != "r-1" || m.ID != "r-2" {
		t.Fatalf("correction: %s", m.Raw)
	}
	originID(t, m)
	if _, ok := childAttrs(t, m.Raw, "urn:xmpp:receipts", "request"); ok {
		t.Fatalf("a receipt request nobody asked for: %s", m.Raw)
	}

	// In: a correction, a message asking for a receipt, an OMEMO message.
	for _, raw := range []string{
		fmt.Sprintf(`<message to='%s' type='chat' id='a-2'><body>sorry, 43</body><replace xmlns='urn:xmpp:message-correct:0' id='a-1'/></message>`, bot),
		fmt.Sprintf(`<message to='%s' type='chat' id='a-3'><body>ping?</body><request xmlns='urn:xmpp:receipts'/></message>`, bot),
		fmt.Sprintf(`<message to='%s' type='chat' id='a-4'><body>I sent you an OMEMO encrypted message but your client doesn’t seem to support that.</body>`+
			`<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='27183'><key rid='31415'>BASE64KEY</key><iv>BASE64IV</iv></header><payload>BASE64PAYLOAD</payload></encrypted>`+
			`<encryption xmlns='urn:xmpp:eme:0' namespace='eu.siacs.conversations.axolotl' name='OMEMO'/><store xmlns='urn:xmpp:hints'/></message>`, bot),
	} {
		if err := alice.SendRaw(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if ev := nextOutcome(t, q.in); ev.Kind != "message" || ev.ID != "a-2" || ev.Replace != "a-1" || ev.Text != "sorry, 43" {
		t.Fatalf("inbound correction: %+v", ev)
	}
	// The receipt for a-3 says the message was kept: its event is in the
	// queue by then (nothing reads the queue until the receipt is in).
	m = recv(t, alice, 30*time.Second)
	if a, ok := childAttrs(t, m.Raw, "urn:xmpp:receipts", "received"); !ok || a["id"] != "a-3" || m.From != bot {
		t.Fatalf("want the receipt for a-3 from %s, got %s", bot, m.Raw)
	}
	if n := harness.QueueLen(t, q.in); n < 1 {
		t.Fatalf("receipt sent, but the event is not in the queue (%d)", n)
	}
	if ev := nextOutcome(t, q.in); ev.Kind != "message" || ev.ID != "a-3" || ev.Text != "ping?" {
		t.Fatalf("message that asked for a receipt: %+v", ev)
	}
	if ev := nextOutcome(t, q.in); ev.Kind != "message" || ev.ID != "a-4" || ev.Encrypted != "omemo" || ev.Text != "" {
		t.Fatalf("OMEMO message: %+v", ev)
	}
	if extra := harness.Get(t, q.in, 1, 0); len(extra) > 0 {
		t.Fatalf("an event too many: %s", extra[0].Body)
	}
	_, body := rg.get(t, "/metrics")
	for _, want := range []string{
		`xmppgw_receipts_total{status="received"} 1`,
		`xmppgw_receipts_total{status="displayed"} 1`,
		`xmppgw_receipts_total{status="acknowledged"} 1`,
		`xmppgw_receipts_unsolicited_total 3`,
		`xmppgw_inbound_receipts_sent_total 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestOriginIDAcrossRedelivery: an item written to the stream but never
// confirmed by the server (the link stalls after it went out, then dies)
// is delivered again by the next session with the same stanza id and
// origin-id, so that clients can drop the duplicate.
func TestOriginIDAcrossRedelivery(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	proxy := harness.StartProxy(t, p.ComponentAddr)
	cfg := componentConfig(t, proxy.Addr, p.ComponentDomain, p.Secret, q)
	// Only the cut ends the stalled link: no keepalive gives up on it
	// first (a reconnect would confirm the item on a new link).
	cfg.XMPP.Keepalive = 10 * time.Minute
	rg := startGateway(t, cfg)

	// What the server says to the gateway is held from now on: the
	// barrier's answer never comes, so the item cannot be acknowledged.
	proxy.Stall(harness.Down)
	// No id member and no message-id: the id is derived from the item,
	// and must come out the same the second time.
	harness.PublishJSON(t, q.out, map[string]any{"target": alice.JID.Bare().String(), "text": "once or twice"})
	first := recv(t, alice, 30*time.Second)
	id := originID(t, first)
	if n := metricValue(t, rg, `xmppgw_outbound_items_total{result="sent"}`); n != 0 {
		t.Fatalf("item acknowledged without the server's answer: sent = %v", n)
	}
	// The link dies; the next session sends the unacknowledged item again.
	proxy.Cut()
	second := recv(t, alice, 60*time.Second)
	if second.Body != "once or twice" || second.ID != first.ID || originID(t, second) != id {
		t.Fatalf("redelivery: first %q/%q, second %q/%q", first.ID, id, second.ID, second.Body)
	}
	waitFor(t, 30*time.Second, "the item acknowledged", func() bool { return metricValue(t, rg, `xmppgw_outbound_items_total{result="sent"}`) == 1 })
	waitFor(t, 30*time.Second, "the out queue empty", func() bool { return harness.QueueLen(t, q.out) == 0 })
}

// TestInboundReceiptWaitsForBlockedBroker: while the broker blocks
// publishers (a memory alarm on a private node), a message that asks for
// a receipt is held, unanswered; once the alarm clears and the broker has
// confirmed its event, the sender gets the receipt, and the event is in the
// queue. (inbound.blocked_wait is long here so that the alarm, however slow
// rabbitmqctl is on a busy machine, clears before the sender is refused.)
func TestInboundReceiptWaitsForBlockedBroker(t *testing.T) {
	node := harness.StartRabbitMQ(t, harness.RabbitMQOptions{Heartbeat: 4})
	harness.UseBroker(t, node.URL)
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	cfg := gatewayConfig(t, p, q)
	cfg.Inbound.BlockedWait = 5 * time.Minute
	rg := startGateway(t, cfg)
	bot := "notices@" + p.ComponentDomain

	// The memory alarm is set and cleared with rabbitmqctl (seconds each on
	// a busy machine). Before the message is sent the node must report the
	// alarm; once it is cleared, the receipt's arrival proves the block
	// lifted.
	setAlarm := func(on bool) {
		t.Helper()
		arg := []string{"set_vm_memory_high_watermark", "0.4"}
		if on {
			arg = []string{"set_vm_memory_high_watermark", "absolute", "1"}
		}
		if out, err := node.Ctl(arg...); err != nil {
			t.Fatalf("%v: %v %s", arg, err, out)
		}
	}
	setAlarm(true)
	t.Cleanup(func() { _, _ = node.Ctl("set_vm_memory_high_watermark", "0.4") })
	waitFor(t, 60*time.Second, "the memory alarm on", func() bool {
		out, err := node.Ctl("eval", "rabbit_alarm:get_alarms().")
		return err == nil && strings.Contains(out, "memory")
	})

	raw := fmt.Sprintf(`<message to='%s' type='chat' id='b-1'><body>kept?</body><request xmlns='urn:xmpp:receipts'/></message>`, bot)
	if err := alice.SendRaw(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the event held for the blocked broker", func() bool {
		return metricValue(t, rg, "xmppgw_inbound_buffered") == 1
	})
	// Held: no receipt (nor error) has reached alice, the queue is empty.
	select {
	case m := <-alice.Messages():
		t.Fatalf("alice got an answer while the broker blocks: %s", m.Raw)
	default:
	}
	if n := harness.QueueLen(t, q.in); n != 0 {
		t.Fatalf("%d events in the queue while the broker blocks", n)
	}

	setAlarm(false)
	m := recv(t, alice, 60*time.Second)
	if a, ok := childAttrs(t, m.Raw, "urn:xmpp:receipts", "received"); !ok || a["id"] != "b-1" || m.Type == "error" {
		t.Fatalf("want the receipt for b-1, got %s", m.Raw)
	}
	if n := harness.QueueLen(t, q.in); n != 1 {
		t.Fatalf("receipt sent with %d events in the queue, want 1", n)
	}
	if ev := nextOutcome(t, q.in); ev.ID != "b-1" || ev.Text != "kept?" {
		t.Fatalf("event %+v", ev)
	}
	for series, want := range map[string]float64{
		"xmppgw_inbound_receipts_sent_total":             1,
		`xmppgw_inbound_refused_total{reason="blocked"}`: 0, // never refused
	} {
		if got := metricValue(t, rg, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
