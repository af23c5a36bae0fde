package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/integration/harness"
)

// outItem is an outbound item as a worker would publish it.
type outItem struct {
	Target     string          `json:"target,omitempty"`
	Text       string          `json:"text,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	From       string          `json:"from,omitempty"`
	Type       string          `json:"type,omitempty"`
	ID         string          `json:"id,omitempty"`
	Stanza     string          `json:"stanza,omitempty"`
	EnqueuedAt string          `json:"enqueued_at,omitempty"`
}

// publishItems publishes one AMQP message per body with message ids
// "<prefix><index>", in order, mandatory, waiting for every confirm; a
// return (no such queue) fails the test.
func publishItems(t testing.TB, queue, prefix string, bodies [][]byte) {
	t.Helper()
	ch := harness.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, len(bodies)+1))
	returns := ch.NotifyReturn(make(chan amqp.Return, len(bodies)+1))
	for i, b := range bodies {
		err := ch.Publish("", queue, true, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    fmt.Sprintf("%s%d", prefix, i),
			Timestamp:    time.Now(),
			Body:         b,
		})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for range bodies {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("broker nacked publish %d", c.DeliveryTag)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no confirm within 30 s")
		}
	}
	select {
	case r := <-returns:
		t.Fatalf("publish to %s returned: %s (declare the queues first)", queue, r.ReplyText)
	default:
	}
}

// mustJSON encodes v as a worker would, without HTML escaping (so that a
// payload's bytes stay as written).
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// trickyText is the text of item i: markup characters, emoji, right-to-left
// script, control-adjacent whitespace and, every 100th item, 10 KB.
func trickyText(i int) string {
	switch i % 5 {
	case 0:
		return fmt.Sprintf("#%d <b>&amp;</b> 'single' \"double\" < > &", i)
	case 1:
		return fmt.Sprintf("#%d emoji 🎉👩‍👩‍👧 flag 🇫🇷 and CJK 漢字", i)
	case 2:
		return fmt.Sprintf("#%d right-to-left: שלום עולם مرحبا بالعالم \u200f", i)
	case 3:
		if i%100 == 3 {
			return fmt.Sprintf("#%d ", i) + strings.Repeat("10KB <&>'\" ", 10240/11)
		}
		return fmt.Sprintf("#%d tabs\tand\nnew\r\nlines ]]> <![CDATA[x]]>", i)
	default:
		return fmt.Sprintf("#%d plain", i)
	}
}

func TestOutboundTrickyItemsArriveInOrder(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))

	const n = 1000
	bodies := make([][]byte, n)
	payloads := make([]string, n)
	for i := range bodies {
		it := outItem{Target: p.JID("alice"), Text: trickyText(i)}
		if i%3 == 0 {
			payloads[i] = fmt.Sprintf(`{"i":%d,"s":"<&>'\"","u":"é🎉","n":[1,2.5,null,true],"o":{}}`, i)
			it.Payload = json.RawMessage(payloads[i])
		}
		bodies[i] = mustJSON(t, it)
	}
	publishItems(t, q.out, "tricky-", bodies)

	for i := 0; i < n; i++ {
		var m harness.Msg
		select {
		case m = <-alice.Messages():
		case <-time.After(30 * time.Second):
			t.Fatalf("message %d did not arrive within 30 s", i)
		}
		// The gateway writes CR as &#xD; (see the stanza tests); Prosody
		// re-serialises it as a raw CR, which the client's XML parser
		// normalises with the LF after it (XML 1.0 §2.11).
		if want := strings.ReplaceAll(trickyText(i), "\r\n", "\n"); m.Body != want {
			t.Fatalf("message %d: body\n got %q\nwant %q", i, m.Body, want)
		}
		if want := fmt.Sprintf("tricky-%d", i); m.ID != want {
			t.Fatalf("message %d: id %q, want %q (the AMQP message-id)", i, m.ID, want)
		}
		if payloads[i] != "" {
			if !m.HasJSON || m.JSON != payloads[i] {
				t.Fatalf("message %d: payload %q (present %v), want %q", i, m.JSON, m.HasJSON, payloads[i])
			}
		} else if m.HasJSON {
			t.Fatalf("message %d: unexpected payload %q", i, m.JSON)
		}
		if m.Type != "chat" || m.From != "notices@"+p.ComponentDomain {
			t.Fatalf("message %d: type %q from %q", i, m.Type, m.From)
		}
	}
	waitFor(t, 10*time.Second, "all items acknowledged", func() bool {
		return harness.QueueLen(t, q.out) == 0 && metricValue(t, gw, `xmppgw_outbound_items_total{result="sent"}`) == n
	})
	if err := gw.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

func TestOutboundBadItemsAreDeadLettered(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))
	target := p.JID("alice")

	bad := []struct {
		body   []byte
		reason string
	}{
		{[]byte(`this is not JSON`), "invalid_json"},
		{mustJSON(t, outItem{Text: "no target"}), "missing_field"},
		{mustJSON(t, outItem{Target: "alice@@bad jid", Text: "x"}), "bad_jid"},
		{mustJSON(t, outItem{Target: target, Text: strings.Repeat("x", 65537)}), "text_too_long"},
		{mustJSON(t, outItem{Target: target, Text: "x", From: "someone@evil.example"}), "forbidden_from"},
		{mustJSON(t, outItem{Stanza: "<message to='" + target + "'><body>x</body></message></stream:stream><message/>"}), "bad_stanza"},
		{[]byte("{\"target\":\"" + target + "\",\"text\":\"bad \xff utf8\"}"), "invalid_utf8"},
	}
	var bodies [][]byte
	good := 0
	for i, b := range bad {
		bodies = append(bodies, mustJSON(t, outItem{Target: target, Text: fmt.Sprintf("good %d", i)}))
		good++
		bodies = append(bodies, b.body)
	}
	bodies = append(bodies, mustJSON(t, outItem{Target: target, Text: "good last"}))
	good++
	publishItems(t, q.out, "mixed-", bodies)

	for i := 0; i < good; i++ {
		m := recv(t, alice, 15*time.Second)
		want := fmt.Sprintf("good %d", i)
		if i == good-1 {
			want = "good last"
		}
		if m.Body != want {
			t.Fatalf("good item %d: got %q, want %q", i, m.Body, want)
		}
	}
	dead := harness.Drain(t, q.dead, len(bad), 15*time.Second)
	for i, d := range dead {
		reason, _ := d.Headers["x-xmppgw-error"].(string)
		if !strings.HasPrefix(reason, bad[i].reason+":") {
			t.Errorf("dead letter %d: x-xmppgw-error %q, want reason %s", i, reason, bad[i].reason)
		}
		if string(d.Body) != string(bad[i].body) {
			t.Errorf("dead letter %d: body changed", i)
		}
		if want := fmt.Sprintf("mixed-%d", 2*i+1); d.MessageId != want {
			t.Errorf("dead letter %d: message id %q, want %q (properties kept)", i, d.MessageId, want)
		}
	}
	waitFor(t, 10*time.Second, "outbound queue empty", func() bool { return harness.QueueLen(t, q.out) == 0 })
	// The metric counts acknowledged items: the last dead letters may be
	// acked a moment after they are in their queue.
	dl := func() float64 { return metricOrZero(t, gw, `xmppgw_outbound_items_total{result="dead_lettered"}`) }
	waitFor(t, 15*time.Second, "dead letters acknowledged", func() bool { return dl() >= float64(len(bad)) })
	if v := dl(); v != float64(len(bad)) {
		t.Errorf("dead_lettered metric = %v, want %d", v, len(bad))
	}
	select {
	case m := <-alice.Messages():
		t.Fatalf("unexpected extra message %q", m.Body)
	case <-time.After(300 * time.Millisecond):
	}
}
