package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/queue"
)

// Bounds of the inbound loop. Every buffered message ends, within them, as
// an event the broker confirmed or as an error to its sender.
const (
	// confirmTimeout bounds the wait for the broker's confirm of an event
	// while the connection stays up; past it the sender is told (type
	// wait). If the confirm still comes, the event is queued too: a
	// duplicate at worst if the sender sends again, never a silent loss.
	confirmTimeout = 30 * time.Second
	// outageGrace is how long buffered events wait for a broker that went
	// down before their senders are told.
	outageGrace = 5 * time.Second
)

// inBatch bounds how many buffered events (or settled confirms) the run
// loop handles per wake-up before it looks at everything else again.
const inBatch = 64

// pendingEvent is an event published and waiting for its confirm.
type pendingEvent struct {
	c  confirmation
	it inItem
	at time.Time // when it was published (to the loop's clock)
}

// expired counts the events at the front of pending still unconfirmed after
// the timeout (events behind an unexpired one wait their turn: confirms
// come in order).
func expired(pending []pendingEvent, now time.Time, timeout time.Duration) int {
	n := 0
	for n < len(pending) && !pending[n].c.Resolved() && now.Sub(pending[n].at) > timeout {
		n++
	}
	return n
}

// counterKey names a child of InboundEvents.
type counterKey struct{ kind, route string }

// inLoop is the state of the inbound publishing loop: it publishes buffered
// events, pipelined, and settles their confirms in order.
type inLoop struct {
	in       *inbound
	buf      []byte
	pending  []pendingEvent
	counters map[counterKey]prometheus.Counter // InboundEvents children, looked up once
	settled  chan struct{}                     // signalled by every Confirm once it resolves
	now      time.Time                         // the loop's clock, read once per wake-up
	// life is the context of publishes: never cancelled by the stop, so
	// the drain can still publish; it ends when the drain times out.
	life      context.Context
	downSince time.Time     // when the publisher went away; zero while up
	receipts  receiptWriter // receipts owed for confirmed events, written per batch
	// batchCtx bounds the publishes of one wake-up while the broker does
	// not block: one context per batch, not one (and a timer) per event.
	batchCtx    context.Context
	batchCancel context.CancelFunc
	// corked is the publisher the batch's publishes are held on, so that
	// they leave in one write at its end; nil between batches.
	corked eventPublisher
}

// run publishes buffered events until ctx is done, then closes the buffer
// and drains it, bounded by in.drain.
func (in *inbound) run(ctx context.Context) error {
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	l := &inLoop{
		in:       in,
		counters: make(map[counterKey]prometheus.Counter),
		settled:  make(chan struct{}, 1),
		now:      time.Now(),
		life:     life,
		receipts: receiptWriter{g: in.g},
	}
	stopping := ctx.Done()
	var drainBy <-chan time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if stopping == nil && len(in.ch) == 0 && len(l.pending) == 0 {
			return nil
		}
		pub, changed := in.publisher()
		if pub == nil && l.downSince.IsZero() {
			l.downSince = time.Now()
		} else if pub != nil {
			l.downSince = time.Time{}
		}
		var items chan inItem
		if pub != nil || stopping == nil {
			items = in.ch
		}
		select {
		case <-stopping:
			// Refuse what comes from now on; drain what is buffered.
			stopping = nil
			in.close()
			t := time.NewTimer(in.drain)
			defer t.Stop()
			drainBy = t.C
		case <-drainBy:
			l.giveUp()
			endLife()
			return nil
		case <-l.settled:
			l.now = time.Now()
			l.settleReady()
		case l.now = <-tick.C:
			l.expire()
			if !l.downSince.IsZero() && l.now.Sub(l.downSince) > in.grace {
				l.refuseBuffered("broker_down")
			}
		case it := <-items:
			l.now = time.Now()
			l.publish(&it, pub)
			// Take what else is buffered, as further turns of the loop
			// would, without going back to sleep in between.
			for n := 1; n < inBatch; n++ {
				pub, _ = in.publisher()
				if pub == nil && stopping != nil {
					break
				}
				select {
				case it = <-in.ch:
				default:
					n = inBatch
					continue
				}
				l.publish(&it, pub)
			}
			l.endBatch()
			l.settleReady()
		case <-changed:
			// the publisher came up or went down: re-evaluate
		}
	}
}

// release frees an event's room in the buffer.
func (l *inLoop) release(it *inItem) {
	in := l.in
	in.g.metrics.InboundBuffer.Dec()
	in.bytes.Add(-eventSize(&it.ev))
	in.held.Add(-1)
	in.progress.Store(l.now.UnixNano())
	in.freed()
}

// publish publishes one buffered event, or refuses it when there is no
// broker to take it.
func (l *inLoop) publish(it *inItem, pub eventPublisher) {
	in := l.in
	if pub == nil {
		l.release(it)
		in.refuse(it.sess, &it.ev, "broker_down")
		return
	}
	ctx, cancel, late := l.publishContext(it, pub)
	if late {
		cancel()
		l.release(it)
		in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
		in.refuse(it.sess, &it.ev, "blocked")
		return
	}
	if l.corked != pub {
		l.uncork()
		pub.Cork()
		l.corked = pub
	}
	l.buf = it.ev.AppendJSON(l.buf[:0])
	c, err := pub.PublishNotify(ctx, it.key, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Type:         it.ev.Kind,
		MessageId:    shortString(it.ev.ID),
		Timestamp:    it.ev.ReceivedAt,
		Body:         l.buf,
	}, true, l.settled)
	cancel()
	if err != nil {
		l.release(it)
		in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
		reason := "broker_down"
		if errors.Is(err, queue.ErrBlocked) {
			reason = "blocked"
		}
		in.refuse(it.sess, &it.ev, reason)
		return
	}
	l.pending = append(l.pending, pendingEvent{c: c, it: *it, at: l.now})
}

// publishContext bounds one publish. While the broker blocks publishers
// the wait counts from the message's arrival (inbound.blocked_wait), so
// that the events buffered behind a block are refused together once it
// lasts too long, not one wait after another; late reports that it is
// already over. Otherwise a block that begins during the publish may hold
// it for that long.
func (l *inLoop) publishContext(it *inItem, pub eventPublisher) (ctx context.Context, cancel context.CancelFunc, late bool) {
	wait := l.in.g.cfg.Load().Inbound.BlockedWait
	if !pub.Blocked() {
		// (at least a second: 0 refuses at once only a known block)
		if l.batchCtx == nil {
			l.batchCtx, l.batchCancel = context.WithTimeout(l.life, max(wait, time.Second))
		}
		return l.batchCtx, noCancel, false
	}
	now := time.Now() // not l.now: an earlier publish of the batch may have waited
	deadline := it.ev.ReceivedAt.Add(wait)
	if it.ev.ReceivedAt.IsZero() || deadline.After(now.Add(wait)) {
		deadline = now.Add(wait) // no arrival time, or one in the future
	}
	ctx, cancel = context.WithDeadline(l.life, deadline)
	return ctx, cancel, !deadline.After(now)
}

// noCancel is the cancel of a publish that shares the batch's context.
var noCancel context.CancelFunc = func() {}

// endBatch sends the batch's publishes and releases its context.
func (l *inLoop) endBatch() {
	l.uncork()
	if l.batchCancel != nil {
		l.batchCancel()
		l.batchCtx, l.batchCancel = nil, nil
	}
}

// uncork sends what the batch's publisher holds.
func (l *inLoop) uncork() {
	if l.corked != nil {
		l.corked.Uncork()
		l.corked = nil
	}
}

// shortString is s if it fits an AMQP short string (255 bytes), else "":
// a longer stanza id stays in the event's JSON but cannot be the
// message-id property (the publish would fail, and with it the event).
func shortString(s string) string {
	if len(s) > 255 {
		return ""
	}
	return s
}

// settleReady settles the front of pending while it is resolved, at most
// inBatch: the same as that many turns of the loop taking front.
func (l *inLoop) settleReady() {
	defer l.receipts.flush()
	for n := 0; len(l.pending) > 0 && l.pending[0].c.Resolved(); n++ {
		if n == inBatch {
			// More are ready: come back after looking at the rest.
			select {
			case l.settled <- struct{}{}:
			default:
			}
			return
		}
		l.settle(&l.pending[0])
		l.pop()
	}
}

func (l *inLoop) pop() {
	l.pending[0] = pendingEvent{}
	l.pending = l.pending[1:]
}

// settle counts a confirmed event, or refuses a failed one.
func (l *inLoop) settle(pe *pendingEvent) {
	in := l.in
	l.release(&pe.it)
	err := pe.c.Err()
	if err == nil {
		k := counterKey{pe.it.ev.Kind, pe.it.route}
		c, ok := l.counters[k]
		if !ok {
			c = in.g.metrics.InboundEvents.WithLabelValues(k.kind, k.route)
			l.counters[k] = c
		}
		c.Inc()
		if pe.it.ev.WantsReceipt {
			// Only now, with the event confirmed, has the gateway kept
			// the message (XEP-0184: a receipt says it was received).
			l.receipts.add(pe.it.sess, &pe.it.ev)
		}
		return
	}
	in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
	reason := "closed"
	switch {
	case errors.Is(err, queue.ErrReturned):
		reason = "returned"
		in.log.Error("event unroutable: does its queue exist?", "queue", pe.it.key, "route", pe.it.route)
	case errors.Is(err, queue.ErrNacked):
		reason = "nacked"
	}
	in.refuse(pe.it.sess, &pe.it.ev, reason)
}

// expire refuses the events whose confirm is overdue.
func (l *inLoop) expire() {
	in := l.in
	for n := expired(l.pending, l.now, confirmTimeout); n > 0; n-- {
		pe := &l.pending[0]
		l.release(&pe.it)
		in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
		in.log.Error("no confirm from the broker in time; the sender is told", "timeout", confirmTimeout, "id", pe.it.ev.ID)
		in.refuse(pe.it.sess, &pe.it.ev, "timeout")
		l.pop()
	}
}

// refuseBuffered refuses every event still in the buffer.
func (l *inLoop) refuseBuffered(reason string) {
	for {
		select {
		case it := <-l.in.ch:
			l.release(&it)
			l.in.refuse(it.sess, &it.ev, reason)
		default:
			return
		}
	}
}

// giveUp ends a drain that ran out of time: the buffered events and those
// still awaiting a confirm are refused (a confirm may still come: a
// duplicate at worst if the sender sends again).
func (l *inLoop) giveUp() {
	in := l.in
	in.log.Warn("inbound drain timed out; the senders of what is left are told", "pending", len(l.pending)+len(in.ch))
	for len(l.pending) > 0 {
		pe := &l.pending[0]
		if pe.c.Resolved() {
			l.settle(pe)
		} else {
			l.release(&pe.it)
			in.refuse(pe.it.sess, &pe.it.ev, "shutdown")
		}
		l.pop()
	}
	l.receipts.flush()
	l.refuseBuffered("shutdown")
}
