package queue

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Confirm is the broker's verdict on one publish. It resolves once: Done is
// closed and Err tells the outcome.
type Confirm struct {
	mu       sync.Mutex
	done     chan struct{} // made by the first Done or Wait; closed on resolve
	resolved atomic.Bool   // set once err is written
	err      error
	notify   chan<- struct{} // signalled without blocking once resolved

	// Bookkeeping of the Publisher, guarded by Publisher.mu.
	seq       uint64 // publish sequence number (= delivery tag of the confirm)
	key       string
	mandatory bool
	returned  *ReturnedError
	sig       msgSig // identity of the message, to match a basic.return
}

// msgSig identifies a mandatory publish well enough to tell which of the
// outstanding publishes a basic.return belongs to. It keeps a hash of the
// body, not the body: callers may reuse their buffers after Publish.
type msgSig struct {
	messageID, correlationID, typ, contentType, appID string
	bodyLen                                           int
	bodyHash                                          uint64
}

var sigSeed = maphash.MakeSeed()

func signature(msg *amqp.Publishing) msgSig {
	return msgSig{
		messageID:     msg.MessageId,
		correlationID: msg.CorrelationId,
		typ:           msg.Type,
		contentType:   msg.ContentType,
		appID:         msg.AppId,
		bodyLen:       len(msg.Body),
		bodyHash:      maphash.Bytes(sigSeed, msg.Body),
	}
}

func (c *Confirm) matches(r *amqp.Return) bool {
	s := &c.sig
	return r.Exchange == "" && r.RoutingKey == c.key &&
		r.MessageId == s.messageID && r.CorrelationId == s.correlationID &&
		r.Type == s.typ && r.ContentType == s.contentType && r.AppId == s.appID &&
		len(r.Body) == s.bodyLen && maphash.Bytes(sigSeed, r.Body) == s.bodyHash
}

func (c *Confirm) resolve(err error) {
	c.mu.Lock()
	c.err = err
	c.resolved.Store(true)
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
	if c.notify != nil {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Done is closed when the outcome is known.
func (c *Confirm) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.resolved.Load() {
			close(c.done)
		}
	}
	return c.done
}

// Resolved reports whether the outcome is known (Done is closed).
func (c *Confirm) Resolved() bool { return c.resolved.Load() }

// Err returns the outcome once Done is closed (nil before): nil when the
// broker acked the publish and did not return it; else an error wrapping
// ErrNacked, ErrReturned (a *ReturnedError) or ErrClosed (the connection
// died before the confirm arrived: the message may or may not be queued).
func (c *Confirm) Err() error {
	if c.resolved.Load() {
		return c.err
	}
	return nil
}

// Wait waits for the outcome and returns it, or ctx.Err() if ctx ends first.
func (c *Confirm) Wait(ctx context.Context) error {
	if c.resolved.Load() {
		return c.err
	}
	select {
	case <-c.Done():
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
