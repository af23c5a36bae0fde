package queue

import (
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// connection exposes the consumer's connection to the tests.
func (c *Consumer) connection() *amqp.Connection { return c.conn }

func consume(t *testing.T, q string, prefetch int) *Consumer {
	t.Helper()
	c, err := Consume(testCtx(t), ConsumerConfig{
		URL:      testURL(),
		Queue:    q,
		Prefetch: prefetch,
		Topology: Topology{OutQueue: q},
		Logger:   testLogger(t),
		Name:     "xmppgw test consumer",
	})
	if err != nil {
		t.Fatalf("Consume(%s): %v", q, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConsumerPrefetchAndAck(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, map[string]any{"x-single-active-consumer": true})
	a.publishN(t, q, 50)

	c := consume(t, q, 10)
	var last uint64
	for i := range 10 {
		d, ok := recv(t, c.Deliveries(), 5*time.Second)
		if !ok {
			t.Fatalf("delivery %d missing", i)
		}
		if want := "msg-" + itoa(i); string(d.Body) != want {
			t.Fatalf("delivery %d = %q, want %q", i, d.Body, want)
		}
		last = d.DeliveryTag
	}
	if d, ok := recv(t, c.Deliveries(), 300*time.Millisecond); ok {
		t.Fatalf("11th delivery %q with prefetch 10", d.Body)
	}
	if qi, err := a.inspect(t, q); err != nil || qi.Messages != 40 {
		t.Fatalf("ready messages = %d, %v; want 40", qi.Messages, err)
	}
	// One multiple ack frees the whole window.
	if err := c.Ack(last, true); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 50; i++ {
		d, ok := recv(t, c.Deliveries(), 5*time.Second)
		if !ok {
			t.Fatalf("delivery %d missing", i)
		}
		if d.Redelivered {
			t.Errorf("delivery %d redelivered", i)
		}
		if i%10 == 9 {
			if err := c.Ack(d.DeliveryTag, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
	waitDone(t, c.Done(), "consumer")
	if qi, err := a.inspect(t, q); err != nil || qi.Messages != 0 {
		t.Fatalf("ready messages = %d, %v; want 0", qi.Messages, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestConsumerCloseRequeues(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, map[string]any{"x-single-active-consumer": true})
	a.publishN(t, q, 8)

	c1 := consume(t, q, 5)
	for i := range 5 {
		if _, ok := recv(t, c1.Deliveries(), 5*time.Second); !ok {
			t.Fatalf("delivery %d missing", i)
		}
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c1.Ack(1, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v, want ErrClosed", err)
	}

	c2 := consume(t, q, 100)
	for i := range 8 {
		d, ok := recv(t, c2.Deliveries(), 5*time.Second)
		if !ok {
			t.Fatalf("delivery %d missing", i)
		}
		if want := "msg-" + itoa(i); string(d.Body) != want {
			t.Errorf("delivery %d = %q, want %q", i, d.Body, want)
		}
		if d.Redelivered != (i < 5) {
			t.Errorf("delivery %d: Redelivered = %v", i, d.Redelivered)
		}
		if err := c2.Ack(d.DeliveryTag, false); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsumerCancel(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, map[string]any{"x-single-active-consumer": true})
	a.publishN(t, q, 20)
	c := consume(t, q, 5)
	// Let the window fill.
	deadline := time.Now().Add(5 * time.Second)
	for {
		qi, err := a.inspect(t, q)
		if err != nil {
			t.Fatal(err)
		}
		if qi.Messages == 15 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready = %d, want 15", qi.Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Cancel(); err != nil {
		t.Fatal(err)
	}
	n := 0
	var last uint64
	for d := range c.Deliveries() {
		n++
		last = d.DeliveryTag
	}
	if n != 5 {
		t.Errorf("got %d deliveries after Cancel, want the 5 buffered", n)
	}
	if err := c.Ack(last, true); err != nil {
		t.Errorf("Ack after Cancel: %v", err)
	}
	select {
	case <-c.Done():
		t.Fatalf("Done after Cancel: %v", c.Err())
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if qi, err := a.inspect(t, q); err != nil || qi.Messages != 15 {
		t.Fatalf("ready = %d, %v; want 15", qi.Messages, err)
	}
}

func TestConsumerDone(t *testing.T) {
	for i, tc := range []struct {
		name  string
		kill  func(t *testing.T, a *admin, c *Consumer, q string)
		isErr error
		text  string
	}{
		0: {
			name: "queue deleted",
			kill: func(t *testing.T, a *admin, c *Consumer, q string) {
				ch := a.channel(t)
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					t.Fatal(err)
				}
			},
			isErr: ErrCanceled,
			text:  q0text,
		},
		1: {
			name: "channel error",
			kill: func(t *testing.T, a *admin, c *Consumer, q string) {
				// The broker closes the channel: 406 unknown delivery tag.
				_ = c.Ack(9999, false)
			},
			isErr: ErrClosed,
			text:  "unknown delivery tag",
		},
		2: {
			name: "connection closed",
			kill: func(t *testing.T, a *admin, c *Consumer, q string) {
				c.connection().Close()
			},
			isErr: ErrClosed,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmin(t)
			q := uniqueName(t, "test-queue-")
			a.declare(t, q, map[string]any{"x-single-active-consumer": true})
			a.publishN(t, q, 3)
			c := consume(t, q, 10)
			if _, ok := recv(t, c.Deliveries(), 5*time.Second); !ok {
				t.Fatal("no delivery")
			}
			tc.kill(t, a, c, q)
			waitDone(t, c.Done(), tc.name)
			err := c.Err()
			if !errors.Is(err, tc.isErr) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("%d: Err = %v, want %v mentioning %q", i, err, tc.isErr, tc.text)
			}
			t.Logf("Err = %v", err)
			// Deliveries closes, and the connection is gone.
			for range c.Deliveries() {
			}
			deadline := time.Now().Add(5 * time.Second)
			for !c.connection().IsClosed() {
				if time.Now().After(deadline) {
					t.Fatal("connection left open")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if c.Err() != err {
				t.Errorf("Close changed Err to %v", c.Err())
			}
		})
	}
}

const q0text = "was the queue deleted"
