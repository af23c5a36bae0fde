package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/schema"
)

// DefaultAMQPURL is the broker of the test machine.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// AMQPURL is the broker the tests use: $XMPPGW_TEST_AMQP_URL, else
// DefaultAMQPURL.
func AMQPURL() string {
	if u := os.Getenv("XMPPGW_TEST_AMQP_URL"); u != "" {
		return u
	}
	return DefaultAMQPURL
}

// brokers holds the broker of the tests that use a private one (UseBroker).
var brokers sync.Map // testing.TB -> URL

// UseBroker makes the harness's AMQP helpers (AMQPConn, Channel, queues,
// Publish, Get …) use the broker at url for test t (for example a private
// node from StartRabbitMQ) instead of AMQPURL().
func UseBroker(t testing.TB, url string) {
	brokers.Store(t, url)
	t.Cleanup(func() { brokers.Delete(t) })
}

// BrokerURL is the broker the helpers use for t: the one given to
// UseBroker, else AMQPURL().
func BrokerURL(t testing.TB) string {
	if u, ok := brokers.Load(t); ok {
		return u.(string)
	}
	return AMQPURL()
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// UniqueName returns prefix + the test's name (sanitised) + random hex, at
// most 200 bytes: a name no other test or run uses.
func UniqueName(t testing.TB, prefix string) string {
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 150 {
		name = name[len(name)-150:]
	}
	return prefix + name + "-" + randomHex(4)
}

// UniqueQueue is UniqueName for a queue: the queue (if anyone declares it)
// is deleted when the test ends.
func UniqueQueue(t testing.TB, prefix string) string {
	q := UniqueName(t, prefix)
	url := BrokerURL(t)
	t.Cleanup(func() { deleteQueues(t, url, q) })
	return q
}

// conns holds one broker connection per test.
var conns sync.Map // testing.TB -> *amqp.Connection

// AMQPConn returns the test's connection to the broker, opened on first use
// and closed when the test ends. A broker that is not reachable fails the
// test and names the fix.
func AMQPConn(t testing.TB) *amqp.Connection {
	t.Helper()
	if c, ok := conns.Load(t); ok && !c.(*amqp.Connection).IsClosed() {
		return c.(*amqp.Connection)
	}
	url := BrokerURL(t)
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Fatalf("RabbitMQ not reachable at %s (run .ci/setup): %v", redactURL(url), err)
	}
	if _, loaded := conns.Swap(t, c); !loaded {
		t.Cleanup(func() {
			if c, ok := conns.LoadAndDelete(t); ok {
				_ = c.(*amqp.Connection).Close()
			}
		})
	}
	return c
}

// Channel opens a channel on the test's connection, closed when the test
// ends.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := AMQPConn(t).Channel()
	if err != nil {
		t.Fatalf("harness: amqp channel: %v", err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// DeclareQueue declares a durable queue with args (nil for a classic
// queue) and deletes it when the test ends.
func DeclareQueue(t testing.TB, name string, args amqp.Table) {
	t.Helper()
	ch := Channel(t)
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		t.Fatalf("harness: declare queue %s: %v", name, err)
	}
	url := BrokerURL(t)
	t.Cleanup(func() { deleteQueues(t, url, name) })
}

// DeleteQueues deletes the queues now (missing ones are fine).
func DeleteQueues(t testing.TB, names ...string) {
	t.Helper()
	if err := deleteQueuesErr(BrokerURL(t), names...); err != nil {
		t.Errorf("harness: %v", err)
	}
}

// deleteQueues is DeleteQueues for cleanups: it only logs.
func deleteQueues(t testing.TB, url string, names ...string) {
	if err := deleteQueuesErr(url, names...); err != nil {
		t.Logf("harness: %v", err)
	}
}

func deleteQueuesErr(url string, names ...string) error {
	// Its own connection: the test's may be closed already in a cleanup.
	c, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("delete queues: %w", err)
	}
	defer c.Close()
	for _, n := range names {
		ch, err := c.Channel()
		if err != nil {
			return fmt.Errorf("delete queue %s: %w", n, err)
		}
		_, err = ch.QueueDelete(n, false, false, false)
		ch.Close()
		if err != nil {
			return fmt.Errorf("delete queue %s: %w", n, err)
		}
	}
	return nil
}

// QueueLen returns the number of ready messages in the queue (not those
// delivered and unacknowledged). A missing queue fails the test.
func QueueLen(t testing.TB, name string) int {
	t.Helper()
	ch, err := AMQPConn(t).Channel()
	if err != nil {
		t.Fatalf("harness: amqp channel: %v", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("harness: queue %s: %v", name, err)
	}
	return q.Messages
}

// Publish publishes body to the queue (default exchange, mandatory) and
// waits for the broker's confirm. An unroutable message (no such queue)
// fails the test. props.Body is ignored; DeliveryMode defaults to
// persistent.
func Publish(t testing.TB, queue string, body []byte, props amqp.Publishing) {
	t.Helper()
	PublishBatch(t, queue, [][]byte{body}, props)
}

// PublishJSON publishes v encoded as JSON (content type application/json).
func PublishJSON(t testing.TB, queue string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("harness: json: %v", err)
	}
	Publish(t, queue, b, amqp.Publishing{ContentType: "application/json"})
}

// PublishBatch publishes every body with the same properties, pipelined,
// and waits for all confirms (fast enough for tens of thousands).
func PublishBatch(t testing.TB, queue string, bodies [][]byte, props amqp.Publishing) {
	t.Helper()
	ch, err := AMQPConn(t).Channel()
	if err != nil {
		t.Fatalf("harness: amqp channel: %v", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("harness: confirm mode: %v", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, len(bodies)))
	if props.DeliveryMode == 0 {
		props.DeliveryMode = amqp.Persistent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	confirms := make([]*amqp.DeferredConfirmation, 0, len(bodies))
	for _, b := range bodies {
		msg := props
		msg.Body = b
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
		if err != nil {
			t.Fatalf("harness: publish to %s: %v", queue, err)
		}
		confirms = append(confirms, dc)
	}
	for i, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			t.Fatalf("harness: confirm %d of %d to %s: %v", i+1, len(confirms), queue, err)
		}
		if !ok {
			t.Fatalf("harness: broker nacked message %d to %s", i+1, queue)
		}
	}
	// Returns arrive before the confirm of the same message.
	select {
	case r := <-returns:
		t.Fatalf("harness: message to %s returned: %d %s (declare the queue first)", queue, r.ReplyCode, r.ReplyText)
	default:
	}
}

// Consume starts an auto-ack consumer of the queue on its own channel; the
// channel is closed when the test ends (or the consumer is cancelled).
func Consume(t testing.TB, queue string) <-chan amqp.Delivery {
	t.Helper()
	ch := Channel(t)
	if err := ch.Qos(1000, 0, false); err != nil {
		t.Fatalf("harness: qos: %v", err)
	}
	d, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("harness: consume %s: %v", queue, err)
	}
	return d
}

// Get fetches up to n messages from the queue (basic.get, acknowledged),
// polling until it has n or timeout passes, and returns what it got. Every
// event among them is checked against the schemas (checkEvent).
func Get(t testing.TB, queue string, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	ch, err := AMQPConn(t).Channel()
	if err != nil {
		t.Fatalf("harness: amqp channel: %v", err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	deadline := time.Now().Add(timeout)
	for len(out) < n {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("harness: get from %s: %v", queue, err)
		}
		if ok {
			checkEvent(t, queue, d)
			out = append(out, d)
			continue
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// checkEvent fails the test unless an event the gateway published (AMQP
// type = one of the event kinds, content type application/json) matches
// its schema (schema/events/<kind>.schema.json). Items (dead letters,
// items read back from an out queue) are not events: they carry no such
// type, or the dead-letter header.
func checkEvent(t testing.TB, queue string, d amqp.Delivery) {
	t.Helper()
	if d.ContentType != "application/json" || !slices.Contains(schema.EventKinds, d.Type) {
		return
	}
	if _, dead := d.Headers["x-xmppgw-error"]; dead {
		return
	}
	if err := schema.ValidateEvent(d.Body); err != nil {
		body := d.Body
		if len(body) > 2048 {
			body = body[:2048]
		}
		t.Errorf("harness: an event from %s does not match its schema: %v\n%s", queue, err, body)
	}
}

// Drain is Get that fails the test unless exactly n messages arrive within
// timeout and no further one is waiting then.
func Drain(t testing.TB, queue string, n int, timeout time.Duration) []amqp.Delivery {
	t.Helper()
	out := Get(t, queue, n, timeout)
	if len(out) != n {
		t.Fatalf("harness: %d messages from %s within %s, want %d", len(out), queue, timeout, n)
	}
	if extra := Get(t, queue, 1, 0); len(extra) > 0 {
		t.Fatalf("harness: more than %d messages in %s; the next: %s", n, queue, extra[0].Body)
	}
	return out
}

func redactURL(u string) string {
	return regexp.MustCompile(`//[^@/]*@`).ReplaceAllString(u, "//***@")
}
