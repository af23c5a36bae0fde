package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"

	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// pump moves deliveries into the stream until it fails or ctx is done.
func (o *outbound) pump(ctx context.Context, cfg *Config, addr string, sess stream, pub deadLetterer, cons consumer) error {
	p := pipe{o: o, sess: sess, pub: pub, cons: cons, addr: addr, dlq: cfg.AMQP.DeadLetterQueue, waitq: cfg.WaitQueue(),
		barrierEvery: max(1, cfg.AMQP.Prefetch/4),
		dlWake:       make(chan struct{}, 1), dlBackoff: newBackoff(), wake: time.NewTimer(time.Hour),
		lull: time.NewTimer(time.Hour)}
	p.wake.Stop()
	defer p.wake.Stop()
	p.lull.Stop()
	defer p.lull.Stop()
	if err := p.encoder(); err != nil {
		return err
	}
	deliveries := cons.Deliveries()
	stop := ctx.Done()
	for {
		// A redelivered item goes out alone: take nothing more until its
		// barrier is answered.
		in := deliveries
		if p.isolating() {
			in = nil
		}
		select {
		case <-stop:
			// Graceful: no new deliveries; what the broker already sent
			// arrives on deliveries, which then closes.
			stop = nil
			p.draining = true
			if err := cons.Cancel(); err != nil {
				return fmt.Errorf("%w: cancel: %w", errConsumerLost, err)
			}
		case d, ok := <-in:
			if !ok {
				if p.draining {
					return p.finish()
				}
				return consumerLost(cons)
			}
			if err := p.encoder(); err != nil {
				return err
			}
			if err := p.take(&d); err != nil {
				return err
			}
		more:
			for len(o.buf) < maxBatchBytes && p.taken < maxBatchItems && !p.isolating() {
				select {
				case d, ok := <-deliveries:
					if !ok {
						break more
					}
					if err := p.take(&d); err != nil {
						return err
					}
				default:
					break more
				}
			}
			if err := p.flush(); err != nil {
				return err
			}
		case <-sess.Notify():
			if err := p.confirm(); err != nil {
				return err
			}
		case <-p.dlWake:
			if err := p.confirm(); err != nil {
				return err
			}
		case <-p.wake.C:
			if err := p.woken(); err != nil {
				return err
			}
		case <-p.lull.C:
			if err := p.lulled(); err != nil {
				return err
			}
		case <-sess.Done():
			return fmt.Errorf("xmpp session ended: %v", sess.Err())
		case <-cons.Done():
			return consumerLost(cons)
		case <-pub.Done():
			return fmt.Errorf("publisher lost: %v", pub.Err())
		}
	}
}

// The pipeline needs only these parts of a session, a consumer and a
// publisher (component.Session, queue.Consumer, queue.Publisher).
type (
	stream interface {
		Write(p []byte) error
		WriteWithBarrier(p []byte) (uint64, error)
		Confirmed() uint64
		Notify() <-chan struct{}
		Done() <-chan struct{}
		Err() error
	}
	consumer interface {
		Deliveries() <-chan amqp.Delivery
		Ack(tag uint64, multiple bool) error
		Cancel() error
		Done() <-chan struct{}
		Err() error
	}
	deadLetterer interface {
		// DeadLetter publishes; once the confirm resolves it signals
		// notify without blocking.
		DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string, notify chan<- struct{}) (confirmation, error)
		Blocked() bool
		Done() <-chan struct{}
		Err() error
	}
	confirmation interface {
		Resolved() bool
		Err() error
	}
)

// consumerLost describes why the consumer ended. Its deliveries channel may
// close a moment before its Done, so wait briefly for the reason.
func consumerLost(cons consumer) error {
	select {
	case <-cons.Done():
	case <-time.After(time.Second):
	}
	return fmt.Errorf("%w: %v", errConsumerLost, cons.Err())
}

// pipe is the state of one consuming session.
type pipe struct {
	o            *outbound
	sess         stream
	pub          deadLetterer
	cons         consumer
	enc          *stanza.Encoder
	encGen       uint64 // outbound.gen the encoder was built for
	addr         string // the session's address (client mode: the sender)
	dlq          string
	waitq        string // where items for a room being joined wait (outbound_rooms.go)
	barrierEvery int    // items written without a barrier before one is forced
	draining     bool
	taken        int    // items in the batch being built
	acked        uint64 // highest delivery tag acked
	isolate      bool   // a redelivered item is out alone: wait for its barrier

	dlWake    chan struct{} // a dead letter's confirm resolved
	dlBackoff *backoff      // between retries of failing dead letters
	wake      *time.Timer   // the next dead-letter retry or confirm deadline
	wakeSet   time.Time     // when wake fires; zero if it is not armed
	lull      *time.Timer   // the open batch's barrier is due (barrierDelay)
	lullSet   bool          // lull is armed
}

// isolating reports whether the pipe waits for an isolated item's barrier.
func (p *pipe) isolating() bool { return p.isolate && len(p.o.pending) > 0 }

// encoder (re)builds the encoder when the config changed.
func (p *pipe) encoder() error {
	gen := p.o.gen.Load()
	if p.enc != nil && gen == p.encGen {
		return nil
	}
	enc, err := stanza.NewEncoder(p.o.g.encoderOptions(p.o.g.cfg.Load(), p.addr))
	if err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
	p.enc, p.encGen = enc, gen
	return nil
}

// pace waits for the rate limit's token for one stanza. While it waits, the
// batch so far is written and barrier answers are still acted on. It
// returns the reservation so that a dead-lettered item can give its token
// back.
func (p *pipe) pace() (*rate.Reservation, error) {
	lim := p.o.limiter
	if lim.Limit() == rate.Inf {
		return nil, nil
	}
	r := lim.Reserve()
	d := r.Delay()
	if d <= 0 {
		return r, nil
	}
	if err := p.flush(); err != nil {
		return r, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return r, nil
		case <-p.sess.Notify():
			if err := p.confirm(); err != nil {
				return r, err
			}
		case <-p.lull.C:
			if err := p.lulled(); err != nil {
				return r, err
			}
		case <-p.sess.Done():
			return r, fmt.Errorf("xmpp session ended: %v", p.sess.Err())
		}
	}
}

// take encodes one delivery into the batch, or dead-letters it. A
// redelivered item is written alone behind a barrier of its own.
func (p *pipe) take(d *amqp.Delivery) error {
	o := p.o
	var key uint64
	var redo *tally
	if redelivered(d) {
		key = o.redelivered.key(d)
		redo = o.redelivered.delivered(key, d)
		// Delivered before a crash of the process: the count goes on.
		redo.deliveries = max(redo.deliveries, o.ledger.deliveries(key)+1)
		if redo.deliveries >= o.g.cfg.Load().AMQP.DeliveryLimit || redo.blames >= blameLimit {
			o.ledger.clear(key)
			p.deadLetter(d, key, itemLimitError(redo))
			return nil
		}
		// Alone: what is open goes behind a barrier first.
		if !o.open.empty() {
			if err := p.barrier(); err != nil {
				return err
			}
		}
		// Recorded ahead of the item: a crash it causes finds it there.
		// Cleared with the ack (b.keys), whatever becomes of the item.
		o.ledger.record(key, redo.deliveries)
	}
	res, err := p.pace()
	if err != nil {
		return err
	}
	b := o.open
	meta := stanza.Meta{
		MessageID:     d.MessageId,
		CorrelationID: d.CorrelationId,
		Type:          d.Type,
		AppID:         d.AppId,
		UserID:        d.UserId,
		ContentType:   d.ContentType,
		Timestamp:     d.Timestamp,
	}
	var info stanza.Info
	n0 := len(o.buf)
	o.buf, info, err = p.encode(o.buf, d.Body, meta)
	if err == nil && info.Groupchat {
		o.buf = o.buf[:n0] // written again if the room takes it now
		v, why, gerr := p.roomGate(d, info.To)
		switch {
		case gerr != nil:
			return gerr
		case v == roomDead:
			err = why
		case v == roomPark:
			if res != nil {
				res.Cancel()
			}
			p.park(d, key, info.To)
			return nil
		default:
			o.buf, info, err = p.encode(o.buf, d.Body, meta)
		}
	}
	if err != nil {
		if res != nil {
			res.Cancel() // nothing goes out for it
		}
		p.deadLetter(d, key, err)
		return nil
	}
	b.taking()
	b.sent++
	b.enq = append(b.enq, info.EnqueuedAt)
	b.lastTag = d.DeliveryTag
	p.taken++
	if info.Kind == "presence" && o.g.pres != nil {
		o.g.pres.Sent(&info) // never blocks
	}
	if info.Receipt {
		o.g.receipts.add(info.ID, info.To)
	}
	if redo != nil {
		b.keys = append(b.keys, key)
		if err := p.barrier(); err != nil {
			return err
		}
		p.isolate = true
		o.suspect = key
	}
	return nil
}

// deadLetter puts d into the open batch as a dead letter and publishes it.
// key is its redelivery key, 0 if it was not redelivered.
func (p *pipe) deadLetter(d *amqp.Delivery, key uint64, err error) {
	o := p.o
	label := reasonDeliveryLimit
	var ie *stanza.ItemError
	if errors.As(err, &ie) {
		label = string(ie.Reason)
	}
	o.g.metrics.DeadLetters.WithLabelValues(label).Inc()
	b := o.open
	b.taking()
	b.dls = append(b.dls, deadLetter{d: *d, reason: err.Error(), label: label})
	if key != 0 {
		b.keys = append(b.keys, key)
	}
	b.lastTag = d.DeliveryTag
	p.taken++
	p.publishDeadLetter(&b.dls[len(b.dls)-1])
}

// confirm acks every batch whose barrier the server answered and whose
// dead letters the broker confirmed.
func (p *pipe) confirm() (err error) {
	o := p.o
	done := p.sess.Confirmed()
	now := time.Now()
	n := 0
	for n < len(o.pending) && o.pending[n].seq <= done && p.deadLettersSettled(o.pending[n], now) {
		n++
	}
	if n == 0 {
		// A dead letter not yet confirmed need not hold up the items
		// before it in its batch.
		return p.ackBefore(done)
	}
	if err := p.ack(o.pending[n-1].lastTag); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			err = p.ackBefore(done)
		}
	}()
	var sent, dead, parked int
	for _, b := range o.pending[:n] {
		sent += b.sent
		for i := range b.dls {
			if b.dls[i].queue != "" {
				parked++
			} else {
				dead++
			}
		}
		for _, t := range b.enq {
			if !t.IsZero() {
				o.g.metrics.Lag.Observe(max(0, now.Sub(t).Seconds()))
			}
		}
		o.redelivered.forget(b.keys)
		for _, k := range b.keys {
			o.ledger.clear(k)
		}
		o.recycle(b)
	}
	o.pending = append(o.pending[:0], o.pending[n:]...)
	if len(o.pending) == 0 {
		p.isolate = false
		o.suspect = 0
	}
	m := o.g.metrics
	m.OutboundItems.WithLabelValues(metrics.ResultSent).Add(float64(sent))
	if dead > 0 {
		m.OutboundItems.WithLabelValues(metrics.ResultDeadLettered).Add(float64(dead))
	}
	if parked > 0 {
		m.OutboundItems.WithLabelValues(metrics.ResultParked).Add(float64(parked))
	}
	// Items written without a barrier need one now that none is in
	// flight, or once they waited barrierDelay.
	if len(o.pending) == 0 && !o.open.empty() && len(o.buf) == 0 && p.barrierDue(now) {
		return p.barrier()
	}
	m.OutboundInFlight.Set(float64(p.inFlight()))
	return nil
}

// ack acks every delivery up to tag, once.
func (p *pipe) ack(tag uint64) error {
	if tag <= p.acked {
		return nil
	}
	if err := p.cons.Ack(tag, true); err != nil {
		return fmt.Errorf("%w: ack: %w", errConsumerLost, err)
	}
	p.acked = tag
	return nil
}

// ackBefore acks the items that precede the first unconfirmed dead letter
// of the oldest pending batch, if that batch's barrier was answered
// (done). Delivery tags are consecutive on a channel: everything below
// the dead letter's tag was taken before it.
func (p *pipe) ackBefore(done uint64) error {
	if len(p.o.pending) == 0 {
		return nil
	}
	b := p.o.pending[0]
	if b.seq > done || b.dlDone >= len(b.dls) {
		return nil
	}
	return p.ack(b.dls[b.dlDone].d.DeliveryTag - 1)
}

// finish ends a graceful drain: everything taken goes behind a last barrier,
// which is awaited (bounded) and acked.
func (p *pipe) finish() error {
	o := p.o
	if !o.open.empty() {
		if err := p.barrier(); err != nil {
			return err
		}
	}
	deadline := time.NewTimer(o.drain)
	defer deadline.Stop()
	for len(o.pending) > 0 {
		var err error
		select {
		case <-p.sess.Notify():
			err = p.confirm()
		case <-p.dlWake:
			err = p.confirm()
		case <-p.wake.C:
			err = p.woken()
		case <-p.sess.Done():
			return fmt.Errorf("xmpp session ended while draining: %v", p.sess.Err())
		case <-deadline.C:
			o.log.Warn("drain timed out; unconfirmed items stay in the queue", "items", p.inFlight())
			return nil
		}
		if err != nil {
			return err
		}
	}
	o.log.Info("drained")
	return nil
}

// reloaded picks up live changes of the outbound section: the rate at once,
// the encoder's settings from the next batch on.
func (o *outbound) reloaded(cfg *Config) {
	o.setRate(cfg.Outbound.Rate)
	o.gen.Add(1)
}
