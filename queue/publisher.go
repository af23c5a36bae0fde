package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrorHeader is the header DeadLetter adds, naming why the item failed.
const ErrorHeader = "x-xmppgw-error"

// confirmBuffer is the capacity of the channel of confirm notifications.
const confirmBuffer = 1024

// CloseTimeout bounds how long Close waits for outstanding confirms and for
// the broker's close-ok.
const CloseTimeout = 5 * time.Second

// Publisher is one publishing connection with one channel in confirm mode.
// Publish is safe for concurrent use and pipelined: it writes the message
// and returns a Confirm that resolves when the broker's basic.ack/nack (and
// any basic.return) arrives. It never reconnects: when the connection or
// channel dies, Done is closed, Err says why and every outstanding Confirm
// resolves with ErrClosed.
//
// # Correlating returns with confirms
//
// A confirm carries the publish's sequence number; a basic.return carries
// only the message. RabbitMQ routes the publishes of a channel in order and
// sends the basic.return of a publish before its basic.ack, and amqp091
// dispatches both from the connection's single reader goroutine, in that
// order. The returns and the (re-sequenced) confirms are received by one
// goroutine (run); the returns channel is unbuffered, so the reader cannot
// go on to dispatch the confirm of a publish before run has taken its
// return, and run handles the return before it selects again: a publish's
// return is always handled before its confirm (earlier confirms may still
// wait in the buffered confirms channel, which does not matter). A return is matched to the oldest
// outstanding mandatory publish after the previously returned one whose
// routing key, message id, correlation id, type, content type, app id and
// body (length and hash) are the same. Only an identical message published
// earlier can be picked instead of the right one, which cannot change what
// a caller learns about that content: one copy routed, one returned. When
// the confirm of a publish arrives, its Confirm resolves with ErrReturned if
// a return was matched to it, else success (or ErrNacked).
//
// Locks: pubMu serializes basic.publish with the assignment of sequence
// numbers; mu guards the bookkeeping and is never held while calling into
// amqp091, so run never waits for a publisher that waits for the reader
// goroutine that waits for run.
type Publisher struct {
	conn *amqp.Connection
	sock *corkConn // conn's socket; nil when conn was dialed elsewhere (tests)
	url  string    // the broker's URL that answered, redacted
	ch   *amqp.Channel
	log  *slog.Logger

	pubMu sync.Mutex

	mu            sync.Mutex
	pending       []*Confirm    // unresolved publishes in sequence order
	nextSeq       uint64        // sequence number of the last registered publish
	lastReturnSeq uint64        // sequence number of the last returned publish
	dead          bool          // run has ended: no more confirms will come
	closing       bool          // Close was called
	unblocked     chan struct{} // non-nil while blocked; closed when the block lifts
	err           error
	blockReason   string

	blocked atomic.Bool

	qdMu sync.Mutex
	qdCh *amqp.Channel // channel of QueueDepth; replaced after an error

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// DialPublisher dials a publishing connection named name (shown in the
// management UI); ctx bounds the dial. logger nil discards.
func DialPublisher(ctx context.Context, url string, name string, logger *slog.Logger) (*Publisher, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "amqp", "role", "publisher")
	var sock *corkConn
	conn, used, err := dialWrapped(ctx, url, name, func(c net.Conn) net.Conn {
		sock = newCorkConn(c)
		return sock
	})
	if err != nil {
		return nil, err
	}
	p, err := newPublisher(conn, log)
	if err != nil {
		conn.Close()
		return nil, err
	}
	p.sock = sock
	p.url = RedactURL(used)
	log.Info("publisher connected", "url", p.url)
	return p, nil
}

// URL is the broker URL (of the list given to DialPublisher) this
// publisher is connected to, its password redacted.
func (p *Publisher) URL() string { return p.url }

func newPublisher(conn *amqp.Connection, log *slog.Logger) (*Publisher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("queue: publisher: open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("queue: publisher: confirm mode: %w", err)
	}
	p := &Publisher{conn: conn, ch: ch, log: log, done: make(chan struct{})}
	// returns is unbuffered on purpose: see the type's doc. confirms is
	// buffered so that the reader goroutine rarely waits for run.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, confirmBuffer))
	returns := ch.NotifyReturn(make(chan amqp.Return))
	chClose := ch.NotifyClose(make(chan *amqp.Error, 1))
	connClose := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	p.wg.Add(1)
	go p.run(confirms, returns, chClose, connClose, blocked)
	return p, nil
}

// Publish publishes msg on the default exchange with routing key key and
// returns at once with a Confirm that resolves when the broker confirms it.
// With mandatory, a message no queue takes is returned and its Confirm
// reports ErrReturned. It fails at once with ErrClosed when the connection
// is gone. While the broker blocks publishing (memory or disk alarm)
// Publish waits for the block to lift, at most until ctx ends (ErrBlocked).
func (p *Publisher) Publish(ctx context.Context, key string, msg amqp.Publishing, mandatory bool) (*Confirm, error) {
	return p.PublishNotify(ctx, key, msg, mandatory, nil)
}

// PublishNotify is Publish; in addition, once the returned Confirm resolves
// it sends on notify unless that would block (nil: no notification). One
// buffered channel can thus watch many Confirms: on a signal, check which
// are Resolved.
func (p *Publisher) PublishNotify(ctx context.Context, key string, msg amqp.Publishing, mandatory bool, notify chan<- struct{}) (*Confirm, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := p.waitUnblocked(ctx); err != nil {
		return nil, err
	}
	c := &Confirm{key: key, mandatory: mandatory, notify: notify}
	if mandatory {
		c.sig = signature(&msg)
	}

	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	p.mu.Lock()
	if p.dead || p.closing {
		err := p.err
		p.mu.Unlock()
		return nil, closedError(err)
	}
	p.nextSeq++
	c.seq = p.nextSeq
	p.pending = append(p.pending, c)
	p.mu.Unlock()

	dc, err := p.ch.PublishWithDeferredConfirm("", key, mandatory, false, msg)
	if err != nil {
		if errors.Is(err, amqp.ErrClosed) {
			err = closedError(err)
		} else {
			err = fmt.Errorf("queue: publish to %q: %w", key, err)
		}
		p.mu.Lock()
		owned := false
		if n := len(p.pending); n > 0 && p.pending[n-1] == c {
			p.pending[n-1] = nil
			p.pending = p.pending[:n-1]
			p.nextSeq--
			owned = true
		}
		p.mu.Unlock()
		if owned {
			c.resolve(err)
		}
		return nil, err
	}
	if dc != nil && dc.DeliveryTag != c.seq {
		// Cannot happen while only Publish publishes on p.ch.
		p.log.Error("publish sequence out of step", "ours", c.seq, "amqp091", dc.DeliveryTag)
	}
	return c, nil
}

func (p *Publisher) waitUnblocked(ctx context.Context) error {
	p.mu.Lock()
	unblocked, reason := p.unblocked, p.blockReason
	p.mu.Unlock()
	if unblocked == nil {
		return nil
	}
	if p.sock != nil {
		// What a cork holds must not wait for the block to lift.
		_ = p.sock.Flush()
	}
	select {
	case <-unblocked:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (%s): %w", ErrBlocked, reason, ctx.Err())
	}
}

// DeadLetter republishes delivery d to queue q, mandatory, with its body and
// properties plus the header ErrorHeader = reason, except, as RabbitMQ's own
// dead-lettering does, its expiration (a dead letter that expires is a
// lost item) and the x-delivery-count header of a quorum queue (which would
// count the copy's deliveries from the original's). The delivery's own
// header table is not modified. notify is as for PublishNotify.
func (p *Publisher) DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string, notify chan<- struct{}) (*Confirm, error) {
	headers := make(amqp.Table, len(d.Headers)+1)
	maps.Copy(headers, d.Headers)
	delete(headers, "x-delivery-count")
	headers[ErrorHeader] = reason
	msg := amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          d.UserId,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	return p.PublishNotify(ctx, q, msg, true, notify)
}

// Cork holds the publishes that follow in memory (at most 64 KiB) until
// the matching Uncork sends them with one write: a batch of publishes costs
// one system call, and the broker one read, instead of one per message.
// Every Cork must be matched by an Uncork, soon: confirms of held publishes
// cannot come before it. A publish that has to wait for a blocked broker
// sends what is held first. Calls nest; Close uncorks for good.
func (p *Publisher) Cork() {
	if p.sock != nil {
		p.sock.Cork()
	}
}

// Uncork matches a Cork; the last one sends what is held. A failed write
// ends the connection (Done, Err), as amqp091's own failed writes do.
func (p *Publisher) Uncork() {
	if p.sock != nil {
		_ = p.sock.Uncork()
	}
}

// QueueDepth returns the number of ready messages and of consumers of queue
// name, by a passive declare on a channel of its own: a missing queue
// (ErrNotFound) closes only that channel, never the publishing one.
func (p *Publisher) QueueDepth(name string) (messages int, consumers int, err error) {
	p.qdMu.Lock()
	defer p.qdMu.Unlock()
	if p.qdCh == nil || p.qdCh.IsClosed() {
		ch, err := p.conn.Channel()
		if err != nil {
			if errors.Is(err, amqp.ErrClosed) {
				return 0, 0, closedError(err)
			}
			return 0, 0, fmt.Errorf("queue: depth of %s: open channel: %w", name, err)
		}
		p.qdCh = ch
	}
	q, err := p.qdCh.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		p.qdCh = nil // the broker closed it
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			return 0, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return 0, 0, fmt.Errorf("queue: depth of %s: %w", name, err)
	}
	return q.Messages, q.Consumers, nil
}

// Blocked reports whether the broker blocks publishing on this connection
// (connection.blocked: memory or disk alarm).
func (p *Publisher) Blocked() bool { return p.blocked.Load() }

// Declare declares t on the Publisher's connection (see the function
// Declare), on short-lived channels of its own: a conflict never closes the
// publishing channel.
func (p *Publisher) Declare(t Topology) error {
	if t.Legacy == nil {
		t.Legacy = legacyWarning(p.log)
	}
	return Declare(p.conn, t)
}
