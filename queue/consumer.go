package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ConsumerConfig configures Consume.
type ConsumerConfig struct {
	URL      string
	Queue    string
	Prefetch int // basic.qos prefetch count; 0 means unlimited
	Topology Topology
	Logger   *slog.Logger // nil discards
	Name     string       // connection name shown in the management UI, e.g. "xmppgw consumer"
}

// Consumer is one consuming connection with one channel and one consumer,
// manual acknowledgements. It never reconnects: when the connection, the
// channel or the consumer ends, Done is closed and Err says why. Delivery
// tags are valid only for this Consumer.
type Consumer struct {
	url        string // the broker's URL that answered, redacted
	conn       *amqp.Connection
	ch         *amqp.Channel
	tag        string
	queue      string
	deliveries <-chan amqp.Delivery
	log        *slog.Logger

	mu      sync.Mutex
	closing bool // Close was called: a closed connection is not an error
	err     error

	done chan struct{}
	wg   sync.WaitGroup
}

// Consume dials its own connection (ctx bounds the dial and the setup),
// declares cfg.Topology, sets the prefetch and starts consuming cfg.Queue
// with manual acknowledgements under a unique consumer tag.
func Consume(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "amqp", "role", "consumer", "queue", cfg.Queue)
	if cfg.Queue == "" {
		return nil, errors.New("queue: consume: no queue named")
	}
	if cfg.Prefetch < 0 || cfg.Prefetch > 65535 {
		return nil, fmt.Errorf("queue: consume %s: prefetch %d out of range 0..65535", cfg.Queue, cfg.Prefetch)
	}
	conn, used, err := dial(ctx, cfg.URL, cfg.Name)
	if err != nil {
		return nil, err
	}
	c, err := startConsumer(ctx, conn, cfg, log)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.url = RedactURL(used)
	log.Info("consuming", "url", RedactURL(used), "prefetch", cfg.Prefetch, "consumer_tag", c.tag)
	return c, nil
}

func startConsumer(ctx context.Context, conn *amqp.Connection, cfg ConsumerConfig, log *slog.Logger) (*Consumer, error) {
	if cfg.Topology.Legacy == nil {
		cfg.Topology.Legacy = legacyWarning(log)
	}
	if err := Declare(conn, cfg.Topology); err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("queue: consume %s: open channel: %w", cfg.Queue, err)
	}
	if err := ch.Qos(cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("queue: consume %s: qos: %w", cfg.Queue, err)
	}
	c := &Consumer{
		conn:  conn,
		ch:    ch,
		tag:   consumerTag(),
		queue: cfg.Queue,
		log:   log,
		done:  make(chan struct{}),
	}
	// Register the listeners before basic.consume so that nothing is missed.
	connClose := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClose := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancels := ch.NotifyCancel(make(chan string, 1))
	// Not ConsumeWithContext: it cancels the consumer when ctx ends, and ctx
	// bounds only the setup.
	if err := ctx.Err(); err != nil {
		go drainClosed(connClose, chClose, cancels)
		return nil, fmt.Errorf("queue: consume %s: %w", cfg.Queue, err)
	}
	d, err := ch.Consume(cfg.Queue, c.tag, false, false, false, false, nil)
	if err != nil {
		// The listeners close with the connection, which the caller closes;
		// drain them so that nothing lingers.
		go drainClosed(connClose, chClose, cancels)
		return nil, fmt.Errorf("queue: consume %s: %w", cfg.Queue, err)
	}
	c.deliveries = d
	c.wg.Add(1)
	go c.watch(connClose, chClose, cancels)
	return c, nil
}

func drainClosed(connClose, chClose <-chan *amqp.Error, cancels <-chan string) {
	for range connClose {
	}
	for range chClose {
	}
	for range cancels {
	}
}

// consumerTag is unique across gateways and restarts: host, pid, random.
func consumerTag() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("xmppgw-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// watch drains every notification of the connection and the channel until
// both are closed, and ends the Consumer at the first sign of death.
func (c *Consumer) watch(connClose, chClose <-chan *amqp.Error, cancels <-chan string) {
	defer c.wg.Done()
	ended := false
	end := func(err error) {
		if ended {
			return
		}
		ended = true
		c.mu.Lock()
		if c.closing {
			err = nil
		}
		c.err = err
		c.mu.Unlock()
		if err != nil {
			c.log.Warn("consumer ended", "err", err)
		}
		close(c.done)
		// A dead channel or a cancelled consumer leaves the connection up:
		// close it, the broker requeues everything unacknowledged. Closing
		// it also closes the notification channels that end this loop.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_ = c.conn.Close()
		}()
	}
	for connClose != nil || chClose != nil || cancels != nil {
		select {
		case e, ok := <-connClose:
			if !ok {
				connClose = nil
				end(ErrClosed)
				continue
			}
			end(fmt.Errorf("%w: %w", ErrClosed, e))
		case e, ok := <-chClose:
			if !ok {
				chClose = nil
				end(ErrClosed)
				continue
			}
			end(fmt.Errorf("%w: channel: %w", ErrClosed, e))
		case tag, ok := <-cancels:
			if !ok {
				cancels = nil
				continue
			}
			end(fmt.Errorf("%w: consumer %s on queue %s (was the queue deleted?)", ErrCanceled, tag, c.queue))
		}
	}
	end(ErrClosed)
}

// Deliveries returns the deliveries. The channel closes after Cancel (once
// what is buffered is delivered) or when the Consumer dies (what is buffered
// is dropped; the broker requeues it).
func (c *Consumer) Deliveries() <-chan amqp.Delivery { return c.deliveries }

// Ack acknowledges delivery tag, and every earlier one if multiple. After
// the Consumer died it returns an error wrapping ErrClosed: the broker
// requeues everything unacknowledged, forget the tags.
func (c *Consumer) Ack(tag uint64, multiple bool) error {
	if err := c.ch.Ack(tag, multiple); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: ack %d: %w", ErrClosed, tag, err)
		}
		return fmt.Errorf("queue: ack %d: %w", tag, err)
	}
	return nil
}

// Cancel stops the consumer (basic.cancel): the broker sends nothing new and
// Deliveries closes once what was already received is delivered. Acks keep
// working until Close.
func (c *Consumer) Cancel() error {
	if err := c.ch.Cancel(c.tag, false); err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("%w: cancel: %w", ErrClosed, err)
		}
		return fmt.Errorf("queue: cancel: %w", err)
	}
	return nil
}

// Done is closed when the channel, the consumer or the connection ends, or
// after Close.
func (c *Consumer) Done() <-chan struct{} { return c.done }

// URL is the broker URL (of the list in ConsumerConfig.URL) this consumer
// is connected to, its password redacted.
func (c *Consumer) URL() string { return c.url }

// Err returns why the Consumer ended (wrapping ErrClosed or ErrCanceled);
// nil while it runs and after a clean Close.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the channel and the connection; the broker requeues every
// unacknowledged delivery. It is idempotent and waits for the Consumer's
// goroutine to end.
func (c *Consumer) Close() error {
	c.mu.Lock()
	select {
	case <-c.done:
	default:
		c.closing = true
	}
	c.mu.Unlock()
	err := c.conn.Close()
	c.wg.Wait()
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("queue: close consumer: %w", err)
	}
	return nil
}
