package gateway

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
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
