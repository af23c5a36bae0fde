package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The Publisher's life: run, the goroutine that receives every notification
// of amqp091, its end (finish), and Close.

// run is the only receiver of every notification of the connection and the
// channel. It must never block on anything but them.
func (p *Publisher) run(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, chClose, connClose <-chan *amqp.Error, blocked <-chan amqp.Blocking) {
	defer p.wg.Done()
	var cause error
	closeConn := func() {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Not in run: a write stuck on the socket holds the cork.
			p.uncorkForGood()
			_ = p.conn.CloseDeadline(time.Now().Add(CloseTimeout))
		}()
	}
	for confirms != nil || returns != nil || chClose != nil || connClose != nil || blocked != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.onReturn(&r)
		case c, ok := <-confirms:
			if !ok {
				// The channel is gone (for whatever reason, even one
				// without a close notification): so is the Publisher.
				confirms = nil
				closeConn()
				continue
			}
			p.onConfirm(c)
		case e, ok := <-chClose:
			if !ok {
				chClose = nil
				continue
			}
			if cause == nil {
				cause = fmt.Errorf("channel: %w", e)
			}
		case e, ok := <-connClose:
			if !ok {
				connClose = nil
				continue
			}
			if cause == nil {
				cause = e
			}
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			p.onBlocked(b)
		}
	}
	p.finish(cause)
}

// finish ends the Publisher once its notification channels are closed:
// every outstanding Confirm resolves with ErrClosed (wrapping cause), and
// Done is closed.
func (p *Publisher) finish(cause error) {
	p.mu.Lock()
	p.dead = true
	pending := p.pending
	p.pending = nil
	switch {
	case p.closing && (cause == nil || isCloseOK(cause)):
		p.err = nil
	default:
		// cause nil: closed without a reason, behind our back.
		p.err = closedError(cause)
	}
	if p.unblocked != nil {
		close(p.unblocked)
		p.unblocked = nil
	}
	p.mu.Unlock()
	p.blocked.Store(false)
	err := closedError(cause)
	for _, c := range pending {
		c.resolve(err)
	}
	if p.err != nil {
		p.log.Warn("publisher ended", "err", p.err, "unconfirmed", len(pending))
	}
	close(p.done)
}

// isCloseOK is true for the reply of a normal connection.close.
func isCloseOK(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == 200 // reply-success
}

// Done is closed when the connection or the channel has ended and every
// outstanding Confirm is resolved.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err returns why the Publisher ended, wrapping ErrClosed; nil while it runs
// and after a clean Close.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close refuses new publishes, waits up to CloseTimeout for the outstanding
// confirms, then closes the connection; confirms still missing resolve with
// ErrClosed. Idempotent.
func (p *Publisher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	return p.CloseContext(ctx)
}

// CloseContext is Close with the wait for outstanding confirms bounded by
// ctx instead of CloseTimeout.
func (p *Publisher) CloseContext(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.uncorkForGood() // the confirms awaited below may be held
		p.mu.Lock()
		p.closing = true
		var last *Confirm
		if n := len(p.pending); n > 0 {
			last = p.pending[n-1] // confirms resolve in order
		}
		p.mu.Unlock()
		if last != nil {
			select {
			case <-last.Done():
			case <-ctx.Done():
				p.log.Warn("closing with unconfirmed publishes", "err", ctx.Err())
			case <-p.done:
			}
		}
		deadline := time.Now().Add(CloseTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) && d.After(time.Now()) {
			deadline = d
		}
		err := p.conn.CloseDeadline(deadline)
		p.wg.Wait()
		if err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.closeErr = fmt.Errorf("queue: close publisher: %w", err)
		}
	})
	return p.closeErr
}

// uncorkForGood sends what a cork holds and ends corking: the connection's
// close must not wait behind it.
func (p *Publisher) uncorkForGood() {
	if p.sock != nil {
		p.sock.Release()
	}
}
