package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Browser looks at the messages of a queue without removing them: it takes
// them one at a time from the head (basic.get, manual acknowledgements) and
// holds them unacknowledged until Close returns them all (basic.nack with
// requeue). A classic queue puts requeued messages back at their original
// positions, so the queue reads as before; messages published meanwhile
// stay behind them. A quorum queue puts them back at its head in an order
// of its own (RabbitMQ 3.10: neither basic.nack nor a closed channel keeps
// their order). Ack removes one message for good (after its copy was
// confirmed elsewhere, see Move).
//
// Nothing taken can be lost: should the process die or the connection drop
// at any moment, the broker requeues every unacknowledged message itself.
//
// basic.get, not basic.consume: an empty answer (get-empty) tells where the
// queue ends, and the broker sends nothing the Browser did not ask for.
//
// A quorum queue counts each return as a delivery on RabbitMQ 4.0 to 4.2
// (x-delivery-count): past its delivery limit (20 by default there) the
// broker drops or dead-letters the message. Browse such a queue sparingly.
//
// A Browser is used by one goroutine.
type Browser struct {
	conn  *amqp.Connection
	ch    *amqp.Channel
	queue string

	last  uint64 // delivery tag of the last message taken
	taken int
	acked int

	closeOnce sync.Once
	closeErr  error
}

// DialBrowser dials its own connection named name (shown in the management
// UI) and opens a channel on it for browsing queue q. ctx bounds the dial
// and nothing after it.
func DialBrowser(ctx context.Context, url, q, name string) (*Browser, error) {
	if q == "" {
		return nil, errors.New("queue: browse: no queue named")
	}
	conn, _, err := dial(ctx, url, name)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("queue: browse %s: open channel: %w", q, err)
	}
	return &Browser{conn: conn, ch: ch, queue: q}, nil
}

// Next takes the next message from the head of the queue and keeps it
// unacknowledged. ok is false when the queue holds no more ready message.
// remaining is the broker's count of ready messages left behind it.
func (b *Browser) Next() (d amqp.Delivery, remaining int, ok bool, err error) {
	d, ok, err = b.ch.Get(b.queue, false)
	if err != nil {
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			return d, 0, false, fmt.Errorf("%w: %s", ErrNotFound, b.queue)
		}
		if errors.Is(err, amqp.ErrClosed) {
			return d, 0, false, fmt.Errorf("%w: browse %s: %w", ErrClosed, b.queue, err)
		}
		return d, 0, false, fmt.Errorf("queue: browse %s: %w", b.queue, err)
	}
	if !ok {
		return d, 0, false, nil
	}
	b.last = d.DeliveryTag
	b.taken++
	return d, int(d.MessageCount), true, nil
}

// Ack removes one message that Next took, for good.
func (b *Browser) Ack(tag uint64) error {
	if err := b.ch.Ack(tag, false); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: ack %d: %w", ErrClosed, tag, err)
		}
		return fmt.Errorf("queue: ack %d: %w", tag, err)
	}
	b.acked++
	return nil
}

// Taken returns how many messages Next took and how many of them were
// acknowledged.
func (b *Browser) Taken() (taken, acked int) { return b.taken, b.acked }

// Depth returns the number of ready messages of the queue (a passive
// declare on a channel of its own), without those the Browser holds.
func (b *Browser) Depth() (int, error) {
	ch, err := b.conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("queue: depth of %s: open channel: %w", b.queue, err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(b.queue, true, false, false, false, nil)
	if err != nil {
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, b.queue)
		}
		return 0, fmt.Errorf("queue: depth of %s: %w", b.queue, err)
	}
	return q.Messages, nil
}

// Close returns every message taken and not acknowledged to the queue
// (basic.nack, multiple, requeue), then closes the connection. After a lost
// connection the broker has returned them already. Idempotent.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		var err error
		if b.last > 0 && b.acked < b.taken {
			err = b.ch.Nack(b.last, true, true)
			if errors.Is(err, amqp.ErrClosed) {
				err = nil // the broker requeued them when the channel died
			}
		}
		if cerr := b.conn.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) && err == nil {
			err = cerr
		}
		if err != nil {
			b.closeErr = fmt.Errorf("queue: browse %s: return messages: %w", b.queue, err)
		}
	})
	return b.closeErr
}
