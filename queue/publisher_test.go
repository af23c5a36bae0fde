package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func dialPublisher(t testing.TB) *Publisher {
	t.Helper()
	p, err := DialPublisher(testCtx(t), testURL(), "xmppgw test publisher", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPublishPipelined(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, nil)
	p := dialPublisher(t)
	ctx := testCtx(t)

	const n = 10000
	confirms := make([]*Confirm, 0, n)
	start := time.Now()
	for i := range n {
		c, err := p.Publish(ctx, q, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    fmt.Sprint(i),
			Body:         fmt.Appendf(nil, `{"n":%d}`, i),
		}, true)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		confirms = append(confirms, c)
	}
	sent := time.Since(start)
	for i, c := range confirms {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	t.Logf("%d publishes written in %v, all confirmed in %v", n, sent, time.Since(start))
	if m, _, err := p.QueueDepth(q); err != nil || m != n {
		t.Fatalf("QueueDepth = %d, %v; want %d", m, err, n)
	}
}

func TestPublishReturned(t *testing.T) {
	a := newAdmin(t)
	good := uniqueName(t, "test-queue-")
	missing := uniqueName(t, "test-queue-missing-")
	a.declare(t, good, nil)
	p := dialPublisher(t)
	ctx := testCtx(t)

	const n = 2000
	type pub struct {
		c       *Confirm
		missing bool
	}
	pubs := make([]pub, 0, n)
	body := []byte("same body for all")
	nGood := 0
	for i := range n {
		// Every third publish goes nowhere; many messages are identical
		// but for their routing key, some have no message id at all.
		toMissing := i%3 == 1 || i%17 == 0
		key := good
		if toMissing {
			key = missing
		} else {
			nGood++
		}
		msg := amqp.Publishing{Body: body}
		if i%2 == 0 {
			msg.MessageId = fmt.Sprint(i)
		}
		c, err := p.Publish(ctx, key, msg, true)
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, pub{c, toMissing})
	}
	for i, pb := range pubs {
		err := pb.c.Wait(ctx)
		switch {
		case pb.missing && !errors.Is(err, ErrReturned):
			t.Fatalf("publish %d to the missing queue: %v, want ErrReturned", i, err)
		case !pb.missing && err != nil:
			t.Fatalf("publish %d to the good queue: %v", i, err)
		}
		if pb.missing {
			var re *ReturnedError
			if !errors.As(err, &re) || re.Key != missing || re.ReplyCode != amqp.NoRoute {
				t.Fatalf("publish %d: %#v", i, err)
			}
		}
	}
	t.Logf("last return: %v", pubs[1].c.Err())
	if m, _, err := p.QueueDepth(good); err != nil || m != nGood {
		t.Fatalf("QueueDepth = %d, %v; want %d", m, err, nGood)
	}
	// Without mandatory, an unroutable message is silently dropped: success.
	c, err := p.Publish(ctx, missing, amqp.Publishing{Body: body}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatalf("non-mandatory publish to nowhere: %v", err)
	}
}

func TestPublishConcurrent(t *testing.T) {
	a := newAdmin(t)
	good := uniqueName(t, "test-queue-")
	missing := uniqueName(t, "test-queue-missing-")
	a.declare(t, good, nil)
	p := dialPublisher(t)
	ctx := testCtx(t)

	const workers, per = 8, 1000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			var cs []*Confirm
			for i := range per {
				key := good
				if (w+i)%4 == 0 {
					key = missing
				}
				c, err := p.Publish(ctx, key, amqp.Publishing{MessageId: fmt.Sprintf("%d-%d", w, i), Body: []byte("x")}, true)
				if err != nil {
					errs <- err
					return
				}
				cs = append(cs, c)
			}
			for i, c := range cs {
				err := c.Wait(ctx)
				if (w+i)%4 == 0 {
					if !errors.Is(err, ErrReturned) {
						errs <- fmt.Errorf("worker %d publish %d to nowhere: %v", w, i, err)
						return
					}
				} else if err != nil {
					errs <- fmt.Errorf("worker %d publish %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m, _, err := p.QueueDepth(good); err != nil || m != workers*per*3/4 {
		t.Fatalf("QueueDepth = %d, %v; want %d", m, err, workers*per*3/4)
	}
}

func TestDeadLetter(t *testing.T) {
	a := newAdmin(t)
	src := uniqueName(t, "test-queue-")
	dlq := uniqueName(t, "test-queue-dead-")
	a.declare(t, src, nil)
	a.declare(t, dlq, nil)
	p := dialPublisher(t)
	ctx := testCtx(t)

	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	orig := amqp.Publishing{
		Headers:         amqp.Table{"x-tenant": "acme", "x-n": int32(7), "x-nested": amqp.Table{"a": "b"}, "x-delivery-count": int64(3)},
		ContentType:     "application/json",
		ContentEncoding: "identity",
		DeliveryMode:    amqp.Persistent,
		Priority:        3,
		CorrelationId:   "corr-1",
		ReplyTo:         "replies",
		Expiration:      "600000",
		MessageId:       "item-42",
		Timestamp:       ts,
		Type:            "item",
		UserId:          "guest",
		AppId:           "worker",
		Body:            []byte("{not json\xff"),
	}
	c, err := p.Publish(ctx, src, orig, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	d, ok, err := a.ch.Get(src, false)
	if err != nil || !ok {
		t.Fatalf("get %s: %v %v", src, ok, err)
	}
	c, err = p.DeadLetter(ctx, dlq, &d, "invalid-json", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Headers[ErrorHeader]; ok {
		t.Error("DeadLetter modified the delivery's headers")
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	got, ok, err := a.ch.Get(dlq, true)
	if err != nil || !ok {
		t.Fatalf("get %s: %v %v", dlq, ok, err)
	}
	if string(got.Body) != string(orig.Body) {
		t.Errorf("body %q, want %q", got.Body, orig.Body)
	}
	for _, f := range []struct{ name, got, want string }{
		{"content type", got.ContentType, orig.ContentType},
		{"content encoding", got.ContentEncoding, orig.ContentEncoding},
		{"correlation id", got.CorrelationId, orig.CorrelationId},
		{"reply to", got.ReplyTo, orig.ReplyTo},
		{"expiration (dropped: a dead letter must not expire)", got.Expiration, ""},
		{"x-delivery-count (dropped)", fmt.Sprint(got.Headers["x-delivery-count"]), "<nil>"},
		{"message id", got.MessageId, orig.MessageId},
		{"type", got.Type, orig.Type},
		{"user id", got.UserId, orig.UserId},
		{"app id", got.AppId, orig.AppId},
		{"delivery mode", fmt.Sprint(got.DeliveryMode), fmt.Sprint(orig.DeliveryMode)},
		{"priority", fmt.Sprint(got.Priority), fmt.Sprint(orig.Priority)},
		{"timestamp", got.Timestamp.UTC().String(), ts.String()},
		{"x-tenant", fmt.Sprint(got.Headers["x-tenant"]), "acme"},
		{"x-n", fmt.Sprint(got.Headers["x-n"]), "7"},
		{"x-nested", fmt.Sprint(got.Headers["x-nested"]), "map[a:b]"},
		{ErrorHeader, fmt.Sprint(got.Headers[ErrorHeader]), "invalid-json"},
		{"header count", fmt.Sprint(len(got.Headers)), "4"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	// A dead letter queue that does not exist: returned, not lost.
	c, err = p.DeadLetter(ctx, uniqueName(t, "test-queue-missing-"), &d, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); !errors.Is(err, ErrReturned) {
		t.Fatalf("dead letter to nowhere: %v, want ErrReturned", err)
	}
}

func TestQueueDepth(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, nil)
	a.publishN(t, q, 7)
	p := dialPublisher(t)
	ctx := testCtx(t)

	m, n, err := p.QueueDepth(q)
	if err != nil || m != 7 || n != 0 {
		t.Fatalf("QueueDepth = %d, %d, %v; want 7, 0", m, n, err)
	}
	if _, _, err := p.QueueDepth(q + "-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("QueueDepth of a missing queue: %v, want ErrNotFound", err)
	}
	// Publishing and QueueDepth go on working.
	c, err := p.Publish(ctx, q, amqp.Publishing{Body: []byte("x")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _, err := p.QueueDepth(q); err != nil || m != 8 {
		t.Fatalf("QueueDepth = %d, %v; want 8", m, err)
	}
	select {
	case <-p.Done():
		t.Fatalf("publisher died: %v", p.Err())
	default:
	}
}

func TestPublisherClose(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, nil)
	p := dialPublisher(t)
	ctx := testCtx(t)

	// Close waits for the outstanding confirms.
	var cs []*Confirm
	for range 1000 {
		c, err := p.Publish(ctx, q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("x")}, true)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		select {
		case <-c.Done():
		default:
			t.Fatalf("confirm %d unresolved after Close", i)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	waitDone(t, p.Done(), "publisher")
	if err := p.Err(); err != nil {
		t.Fatalf("Err after Close = %v", err)
	}
	if _, err := p.Publish(ctx, q, amqp.Publishing{}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, _, err := p.QueueDepth(q); !errors.Is(err, ErrClosed) {
		t.Fatalf("QueueDepth after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPublisherConnectionLost(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum})
	p := dialPublisher(t)
	ctx := testCtx(t)

	var cs []*Confirm
	for range 5000 {
		c, err := p.Publish(ctx, q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: make([]byte, 1024)}, true)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	p.conn.Close() // behind the Publisher's back: it did not ask for it
	waitDone(t, p.Done(), "publisher")
	if err := p.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", err)
	}
	closed := 0
	for i, c := range cs {
		select {
		case <-c.Done():
		default:
			t.Fatalf("confirm %d unresolved after Done", i)
		}
		switch err := c.Err(); {
		case err == nil:
		case errors.Is(err, ErrClosed):
			closed++
		default:
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	t.Logf("%d of %d confirms ErrClosed", closed, len(cs))
	if _, err := p.Publish(ctx, q, amqp.Publishing{}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after the connection died: %v, want ErrClosed", err)
	}
}

func TestPublishBlocked(t *testing.T) {
	q := uniqueName(t, "test-queue-")
	newAdmin(t).declare(t, q, nil)
	p := dialPublisher(t)
	// A real alarm would block every client of the shared broker: feed the
	// notification by hand.
	p.onBlocked(amqp.Blocking{Active: true, Reason: "low on memory"})
	if !p.Blocked() {
		t.Fatal("Blocked() = false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Publish(ctx, q, amqp.Publishing{}, true); !errors.Is(err, ErrBlocked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while blocked: %v, want ErrBlocked", err)
	}
	// The block lifts while a Publish waits.
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.onBlocked(amqp.Blocking{Active: false})
	}()
	c, err := p.Publish(testCtx(t), q, amqp.Publishing{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if p.Blocked() {
		t.Fatal("Blocked() = true")
	}
}
