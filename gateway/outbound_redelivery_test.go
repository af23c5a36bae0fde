package gateway

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/stanza"
)

// FuzzDeliveryHeaders: whatever a publisher or the broker puts in the
// delivery count header, the count read from it is bounded and never
// negative, and the tally of a redelivered item only grows.
func FuzzDeliveryHeaders(f *testing.F) {
	f.Add(byte(0), int64(19), "", []byte(`{"target":"a@b"}`), "m1")
	f.Add(byte(1), int64(-5), "x", []byte(nil), "")
	f.Add(byte(2), int64(1<<62), "20", []byte("x"), "id")
	f.Add(byte(3), int64(0), "", []byte{0xff}, "")
	f.Fuzz(func(t *testing.T, kind byte, n int64, s string, body []byte, id string) {
		var v any
		switch kind % 9 {
		case 0:
			v = n
		case 1:
			v = int32(n)
		case 2:
			v = int(n)
		case 3:
			v = s
		case 4:
			v = amqp.Table{"x": n}
		case 5:
			v = uint64(n)
		case 6:
			v = uint32(n)
		case 7:
			v = int16(n)
		default:
			v = nil
		}
		d := &amqp.Delivery{Headers: amqp.Table{"x-delivery-count": v}, Body: body, MessageId: id}
		c := brokerDeliveryCount(d)
		if c < 0 || c > 1<<30 {
			t.Fatalf("count %d from %#v", c, v)
		}
		r := newRedeliveries(4)
		k := r.key(d)
		if k != r.key(&amqp.Delivery{Headers: amqp.Table{"other": 1}, Body: body, MessageId: id}) {
			t.Fatal("the key depends on headers the broker changes")
		}
		a := r.delivered(k, d).deliveries
		b := r.delivered(k, d).deliveries
		if a < 2 || b <= a {
			t.Fatalf("tally went %d then %d", a, b)
		}
	})
}

// An item whose encoding panics (a bug some input would reach) does not
// take the process down, which on a classic queue would repeat forever
// (the gateway's delivery count lives in memory): it is set aside at once
// as a poison item, reason delivery_limit, and the items around it go out.
func TestPumpPanickingItemIsSetAside(t *testing.T) {
	real := encodeItem
	t.Cleanup(func() { encodeItem = real }) // after the pump's own cleanup
	encodeItem = func(e *stanza.Encoder, dst, body []byte, m stanza.Meta) ([]byte, stanza.Info, error) {
		if strings.Contains(string(body), "boom") {
			dst = append(dst, "<half a stanza"...) // what it wrote must not stay
			panic(strings.Repeat("index out of range ", 50))
		}
		return real(e, dst, body, m)
	}
	h := startPump(t, 1000)
	stop := make(chan struct{})
	defer close(stop)
	h.answerBarriers(stop)
	h.deliver(item(1))
	h.deliver(`{"target":"alice@example.org","text":"boom"}`)
	h.deliver(item(3))
	testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
	dl := h.dl.list()[0]
	if dl.tag != 2 || !strings.HasPrefix(dl.reason, "delivery_limit: the gateway failed on this item (panic: index out of range") || len(dl.reason) > 300 {
		t.Fatalf("dead letter %d, reason %q (%d bytes)", dl.tag, dl.reason, len(dl.reason))
	}
	dl.c.resolve(nil)
	testkit.Eventually(t, "all acked", func() bool { return h.lastAck() == 3 })
	w, _ := h.s.sent()
	all := strings.Join(w, "")
	if strings.Count(all, "<message") != 2 || strings.Contains(all, "<half") || !strings.Contains(all, "item 3") {
		t.Fatalf("written: %s", all)
	}
	if v := testutil.ToFloat64(h.g.metrics.DeadLetters.WithLabelValues("delivery_limit")); v != 1 {
		t.Fatalf("dead letters delivery_limit = %v", v)
	}
}
