package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// MoveOptions configure Move.
type MoveOptions struct {
	// Select picks the messages to move; nil moves every message examined.
	Select func(*amqp.Delivery) bool
	// Copy makes the message to publish from a delivery; nil copies body
	// and properties unchanged (see Republish).
	Copy func(*amqp.Delivery) amqp.Publishing
	// Max bounds how many messages are examined (taken from the head of
	// the queue); 0 means no bound.
	Max int
	// Window bounds the copies waiting for the broker's confirm; 0 means 256.
	Window int
	// ConfirmTimeout bounds the wait for one confirm, and for the last
	// ones after ctx ended; 0 means 30 s.
	ConfirmTimeout time.Duration
}

// MoveStats says what Move did.
type MoveStats struct {
	Examined int // messages taken from the head of the source queue
	Selected int // of them, picked by Select
	Moved    int // copies confirmed and originals acknowledged
	Left     int // ready messages behind the last one examined (the broker's count)
}

// Move moves the messages that o.Select picks from the queue b browses to
// queue to: each copy is published mandatory through p, and its original
// is acknowledged only once the broker confirmed the copy (routed to a
// queue). Messages not picked, and those whose copy failed, stay where they
// were: Move does not close b, whose Close returns them to their places.
//
// Nothing is lost on the way: until the copy is confirmed the original is
// unacknowledged, and the broker requeues it if this process dies. At worst
// (killed after the confirm, before the ack) a message ends up in both
// queues.
//
// Move stops at the first copy that fails (nack, returned, no confirm in
// time, connection lost) and when ctx ends; it then still settles the
// copies in flight (bounded by o.ConfirmTimeout), so that every confirmed
// copy's original is acknowledged, and returns the first error.
func Move(ctx context.Context, b *Browser, p *Publisher, to string, o MoveOptions) (MoveStats, error) {
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = 30 * time.Second
	}
	if o.Copy == nil {
		o.Copy = func(d *amqp.Delivery) amqp.Publishing { return Republish(d, nil) }
	}
	m := mover{b: b, o: &o, wake: make(chan struct{}, 1)}
	var stopErr error
	for o.Max == 0 || m.stats.Examined < o.Max {
		if err := ctx.Err(); err != nil {
			stopErr = err
			break
		}
		d, left, ok, err := b.Next()
		if err != nil {
			stopErr = err
			break
		}
		if !ok {
			m.stats.Left = 0
			break
		}
		m.stats.Examined++
		m.stats.Left = left
		if o.Select != nil && !o.Select(&d) {
			continue
		}
		m.stats.Selected++
		c, err := p.PublishNotify(ctx, to, o.Copy(&d), true, m.wake)
		if err != nil {
			stopErr = err
			break
		}
		m.inflight = append(m.inflight, flight{tag: d.DeliveryTag, c: c})
		if err := m.settle(); err != nil {
			stopErr = err
			break
		}
		for len(m.inflight) >= o.Window && stopErr == nil {
			stopErr = m.waitFront(ctx)
		}
		if stopErr != nil {
			break
		}
	}
	// Settle what is in flight with a context of its own: ctx may be over.
	for len(m.inflight) > 0 {
		wctx, cancel := context.WithTimeout(context.Background(), o.ConfirmTimeout)
		err := m.waitFront(wctx)
		cancel()
		if err != nil {
			if stopErr == nil {
				stopErr = err
			}
			if errors.Is(err, context.DeadlineExceeded) {
				break // the rest stays unacknowledged: returned by Close
			}
		}
	}
	return m.stats, stopErr
}

type flight struct {
	tag uint64
	c   *Confirm
}

type mover struct {
	b        *Browser
	o        *MoveOptions
	wake     chan struct{}
	inflight []flight
	stats    MoveStats
}

// settle acknowledges the originals of the confirmed copies at the front,
// in order, and returns the error of the first failed copy.
func (m *mover) settle() error {
	for len(m.inflight) > 0 && m.inflight[0].c.Resolved() {
		f := m.inflight[0]
		m.inflight = m.inflight[1:]
		if err := f.c.Err(); err != nil {
			// Its original stays unacknowledged; so do those behind it
			// that are settled next (they are left where they are).
			return fmt.Errorf("queue: move: copy not confirmed, original kept: %w", err)
		}
		if err := m.b.Ack(f.tag); err != nil {
			return err
		}
		m.stats.Moved++
	}
	return nil
}

// waitFront waits for the oldest copy's confirm (at most ConfirmTimeout or
// until ctx ends) and settles.
func (m *mover) waitFront(ctx context.Context) error {
	t := time.NewTimer(m.o.ConfirmTimeout)
	defer t.Stop()
	front := m.inflight[0].c
	for !front.Resolved() {
		select {
		case <-front.Done():
		case <-m.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("queue: move: no confirm in %v: %w", m.o.ConfirmTimeout, context.DeadlineExceeded)
		}
	}
	return m.settle()
}

// Republish returns the message to publish again for delivery d: body and
// properties unchanged, the headers copied without those named in drop.
// The delivery's own header table is not modified.
func Republish(d *amqp.Delivery, drop func(name string) bool) amqp.Publishing {
	var headers amqp.Table
	if len(d.Headers) > 0 {
		headers = make(amqp.Table, len(d.Headers))
		for k, v := range d.Headers {
			if drop == nil || !drop(k) {
				headers[k] = v
			}
		}
		if len(headers) == 0 {
			headers = nil
		}
	}
	return amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		Expiration:      d.Expiration,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
