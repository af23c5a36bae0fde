package gateway

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A dead letter must be confirmed by the broker before its item is acked.
// When the broker refuses it (nack, return), does not confirm it in time,
// or blocks publishers (memory or disk alarm), the item is not acked and
// its dead letter is published again later, with backoff. The pipe keeps
// going meanwhile: the items around it were sent and confirmed by the XMPP
// server, and are acked as soon as the dead letter is confirmed, never
// re-sent. Items behind it wait for their ack; prefetch bounds how many.

// Timeouts of the dead-letter path.
const (
	// dlPublishTimeout bounds one publish of a dead letter, which waits
	// while the broker blocks publishers.
	dlPublishTimeout = time.Second
	// dlConfirmTimeout bounds the wait for the broker's confirm of a dead
	// letter; past it the dead letter is published again.
	dlConfirmTimeout = 30 * time.Second
)

// deadLetter is one item on its way to the dead-letter queue.
type deadLetter struct {
	d      amqp.Delivery // kept whole: a retry publishes it again
	reason string        // the x-xmppgw-error header
	label  string        // the metric label: the reason's class
	queue  string        // where it goes: "" the dead-letter queue; else a parked item's wait queue
	c      confirmation  // nil while waiting for a retry
	at     time.Time     // c != nil: when published; c == nil: when to retry
	ok     bool          // confirmed by the broker
}

// publishDeadLetter publishes j, or schedules a retry when the broker is
// blocking publishers or the publish fails.
func (p *pipe) publishDeadLetter(j *deadLetter) {
	now := time.Now()
	if p.pub.Blocked() {
		p.retryDeadLetter(j, now, "the broker blocks publishers")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dlPublishTimeout)
	q := p.dlq
	if j.queue != "" {
		q = j.queue
	}
	c, err := p.pub.DeadLetter(ctx, q, &j.d, j.reason, p.dlWake)
	cancel()
	if err != nil {
		p.retryDeadLetter(j, now, err.Error())
		return
	}
	j.c, j.at = c, now
}

// retryDeadLetter schedules j's next publish.
func (p *pipe) retryDeadLetter(j *deadLetter, now time.Time, why string) {
	o := p.o
	o.g.metrics.PublishFailures.WithLabelValues("dead_letter").Inc()
	wait := p.dlBackoff.next()
	if o.dlWarn.OK() {
		o.log.Warn("dead letter not confirmed; its item stays unacked and the dead letter is published again",
			"queue", p.dlq, "why", why, "retry_in", wait.Round(time.Millisecond), "message_id", j.d.MessageId)
	}
	j.c, j.at = nil, now.Add(wait)
	p.wakeAt(j.at)
}

// deadLettersSettled reports whether every dead letter of b is confirmed.
// A failed or overdue one is scheduled for a retry.
func (p *pipe) deadLettersSettled(b *batch, now time.Time) bool {
	for ; b.dlDone < len(b.dls); b.dlDone++ {
		j := &b.dls[b.dlDone]
		switch {
		case j.c == nil:
			return false // waiting for its retry
		case !j.c.Resolved():
			if deadline := j.at.Add(dlConfirmTimeout); now.Before(deadline) {
				p.wakeAt(deadline)
				return false
			}
			p.retryDeadLetter(j, now, "no confirm in time")
			return false
		case j.c.Err() != nil:
			p.retryDeadLetter(j, now, j.c.Err().Error())
			return false
		}
		j.ok = true
		p.dlBackoff.reset()
		if j.queue == "" {
			p.o.log.Warn("item dead-lettered", "reason", j.reason, "message_id", j.d.MessageId)
		}
	}
	return true
}

// retryDue publishes again every dead letter whose retry time has come.
func (p *pipe) retryDue(now time.Time) {
	for _, b := range p.o.pending {
		p.retryBatch(b, now)
	}
	p.retryBatch(p.o.open, now)
}

func (p *pipe) retryBatch(b *batch, now time.Time) {
	for i := b.dlDone; i < len(b.dls); i++ {
		j := &b.dls[i]
		if j.c != nil {
			continue
		}
		if now.Before(j.at) {
			p.wakeAt(j.at)
			continue
		}
		p.publishDeadLetter(j)
	}
}

// wakeAt arms the pipe's timer for t unless it is already armed earlier.
func (p *pipe) wakeAt(t time.Time) {
	if !p.wakeSet.IsZero() && !t.Before(p.wakeSet) {
		return
	}
	p.wakeSet = t
	p.wake.Reset(max(0, time.Until(t)))
}

// woken handles the pipe's timer: retries due, and overdue confirms.
func (p *pipe) woken() error {
	p.wakeSet = time.Time{}
	p.retryDue(time.Now())
	return p.confirm()
}
