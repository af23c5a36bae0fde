package queue

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The handlers of what run receives from amqp091: basic.return, the
// confirms and connection.blocked. They keep the books of the outstanding
// publishes (Publisher.pending) and resolve their Confirms.

// onReturn marks the outstanding mandatory publish that r belongs to as
// returned (see Publisher for how it is matched).
func (p *Publisher) onReturn(r *amqp.Return) {
	var found *Confirm
	p.mu.Lock()
	// pending holds consecutive sequence numbers: skip straight past the
	// last returned publish.
	start := 0
	if len(p.pending) > 0 && p.lastReturnSeq >= p.pending[0].seq {
		start = int(p.lastReturnSeq-p.pending[0].seq) + 1
	}
	for _, c := range p.pending[min(start, len(p.pending)):] {
		if c.seq > p.lastReturnSeq && c.mandatory && c.returned == nil && c.matches(r) {
			found = c
			c.returned = &ReturnedError{Key: r.RoutingKey, ReplyCode: r.ReplyCode, ReplyText: r.ReplyText}
			p.lastReturnSeq = c.seq
			break
		}
	}
	p.mu.Unlock()
	if found == nil {
		p.log.Error("basic.return matches no outstanding publish", "routing_key", r.RoutingKey, "message_id", r.MessageId, "reply", r.ReplyText)
		return
	}
	p.log.Debug("publish returned", "routing_key", r.RoutingKey, "message_id", r.MessageId, "reply", r.ReplyText, "seq", found.seq)
}

// onConfirm resolves the oldest outstanding publish with the broker's
// verdict, and any older ones whose confirm was lost as nacked.
func (p *Publisher) onConfirm(cf amqp.Confirmation) {
	p.mu.Lock()
	// amqp091 drops a notification its listener leaves waiting for 5 s.
	// run never stalls that long, but should it happen, the publishes whose
	// confirm was lost have an unknown fate: report them nacked (the caller
	// retries: at-least-once) rather than leave them hanging.
	var lost []*Confirm
	for len(p.pending) > 0 && p.pending[0].seq < cf.DeliveryTag {
		lost = append(lost, p.pending[0])
		p.pending[0] = nil
		p.pending = p.pending[1:]
	}
	if len(lost) > 0 {
		p.mu.Unlock()
		p.log.Error("publisher confirms lost", "count", len(lost))
		for _, c := range lost {
			c.resolve(fmt.Errorf("%w: confirm lost (routing key %q)", ErrNacked, c.key))
		}
		p.mu.Lock()
	}
	if len(p.pending) == 0 || p.pending[0].seq != cf.DeliveryTag {
		var want uint64
		if len(p.pending) > 0 {
			want = p.pending[0].seq
		}
		p.mu.Unlock()
		p.log.Error("confirm out of sequence", "delivery_tag", cf.DeliveryTag, "expected", want)
		return
	}
	c := p.pending[0]
	p.pending[0] = nil
	p.pending = p.pending[1:]
	if len(p.pending) == 0 {
		p.pending = p.pending[:0:0] // let the array go
	}
	p.mu.Unlock()
	switch {
	case !cf.Ack:
		c.resolve(fmt.Errorf("%w (routing key %q)", ErrNacked, c.key))
	case c.returned != nil:
		c.resolve(c.returned)
	default:
		c.resolve(nil)
	}
}

// onBlocked records connection.blocked and connection.unblocked, waking the
// publishes that wait for the block to lift.
func (p *Publisher) onBlocked(b amqp.Blocking) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.Active {
		if p.unblocked == nil {
			p.unblocked = make(chan struct{})
		}
		p.blockReason = b.Reason
		p.blocked.Store(true)
		p.log.Warn("broker blocks publishing", "reason", b.Reason)
		return
	}
	if p.unblocked != nil {
		close(p.unblocked)
		p.unblocked = nil
	}
	p.blocked.Store(false)
	p.log.Info("broker unblocked publishing")
}
