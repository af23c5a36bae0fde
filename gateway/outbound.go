package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"

	"xmppgw/component"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// Batch limits: one write (and at most one barrier) per batch. A batch takes
// whatever deliveries are already waiting, so under light load it is one
// item and under heavy load it fills up.
const (
	maxBatchItems = 256
	maxBatchBytes = 256 << 10
)

// errConsumerLost ends a consuming session whose channel died.
var errConsumerLost = errors.New("gateway: consumer lost")

// batch is a run of consecutive deliveries written together and covered by
// one barrier. Acking its last delivery tag with multiple=true acks it all.
type batch struct {
	seq      uint64 // barrier sequence number; 0 while open (no barrier yet)
	lastTag  uint64
	sent     int
	dead     int
	confirms []confirmation // dead-letter publishes to wait for before acking
	enq      []time.Time    // enqueue times of the sent items, for the lag
}

func (b *batch) empty() bool { return b.sent == 0 && b.dead == 0 }

func (b *batch) clear() {
	*b = batch{confirms: b.confirms[:0], enq: b.enq[:0]}
}

// outbound drains out_queue into the XMPP session: the pipeline of
// docs/ARCHITECTURE.md, "Life of an item". It runs in one goroutine.
type outbound struct {
	g   *Gateway
	log *slog.Logger

	buf     []byte   // stanza bytes of the batch being built
	open    *batch   // items taken and written but not yet behind a barrier
	pending []*batch // behind a barrier, waiting for its answer, oldest first
	free    []*batch

	limiter *rate.Limiter // outbound.rate; rate.Inf when unlimited
	gen     atomic.Uint64 // bumped by a reload: rebuild the encoder
}

func newOutbound(g *Gateway) *outbound {
	o := &outbound{
		g:       g,
		log:     g.log.With("component", "outbound"),
		buf:     make([]byte, 0, maxBatchBytes+64<<10),
		open:    &batch{},
		limiter: rate.NewLimiter(rate.Inf, 1),
	}
	o.setRate(g.cfg.Load().Outbound.Rate)
	return o
}

// setRate sets the token bucket: r stanzas per second (0 = unlimited) with a
// burst of 50 ms worth, so that bursts stay small next to a server's traffic
// shaping.
func (o *outbound) setRate(r float64) {
	if r <= 0 {
		o.limiter.SetLimit(rate.Inf)
		return
	}
	o.limiter.SetBurst(max(1, int(math.Ceil(r/20))))
	o.limiter.SetLimit(rate.Limit(r))
}

// run consumes while an XMPP session and the publisher are up, and stops
// consuming whenever either goes down, so that the broker keeps (and later
// redelivers) everything that was not confirmed.
func (o *outbound) run(ctx context.Context) error {
	bo := newBackoff()
	for {
		sess, err := o.g.sess.await(ctx)
		if err != nil {
			return nil
		}
		pub, err := o.g.publisher.await(ctx)
		if err != nil {
			return nil
		}
		select {
		case <-sess.Done():
			continue // the session died while we waited for the broker
		default:
		}
		cfg := o.g.cfg.Load()
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		cons, err := queue.Consume(dctx, queue.ConsumerConfig{
			URL:      cfg.AMQP.URL,
			Queue:    cfg.AMQP.OutQueue,
			Prefetch: cfg.AMQP.Prefetch,
			Topology: o.g.topology(cfg),
			Logger:   o.g.log, // queue scopes its logger
			Name:     connName("consumer", cfg),
		})
		cancel()
		if err != nil {
			if errors.Is(err, queue.ErrTopology) {
				return fmt.Errorf("%w: amqp: %w", ErrConfig, err)
			}
			if ctx.Err() != nil {
				return nil
			}
			wait := bo.next()
			o.log.Warn("amqp consume failed", "queue", cfg.AMQP.OutQueue, "err", err, "retry_in", wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		o.log.Info("consuming", "queue", cfg.AMQP.OutQueue, "prefetch", cfg.AMQP.Prefetch)
		err = o.session(ctx, cfg, sess, pub, cons)
		_ = cons.Close() // the broker requeues whatever is still unacked
		o.reset()
		if err == nil { // drained after ctx was cancelled
			return nil
		}
		o.log.Warn("stopped consuming", "reason", err)
		if errors.Is(err, errConsumerLost) {
			o.g.metrics.Reconnects.WithLabelValues(linkAMQP).Inc()
			if !sleep(ctx, bo.next()) {
				return nil
			}
		} else {
			bo.reset()
		}
	}
}

// reset forgets every delivery of a dead channel: their tags mean nothing on
// the next one, and the broker redelivers them.
func (o *outbound) reset() {
	o.buf = o.buf[:0]
	for _, b := range o.pending {
		o.recycle(b)
	}
	o.pending = o.pending[:0]
	o.open.clear()
	o.g.metrics.OutboundInFlight.Set(0)
}

func (o *outbound) recycle(b *batch) {
	b.clear()
	o.free = append(o.free, b)
}

func (o *outbound) newBatch() *batch {
	if n := len(o.free); n > 0 {
		b := o.free[n-1]
		o.free = o.free[:n-1]
		return b
	}
	return &batch{}
}

// session runs the pipeline over one XMPP session and one consumer. It
// returns nil after a graceful drain (ctx cancelled), else why it stopped.
func (o *outbound) session(ctx context.Context, cfg *Config, sess *component.Session, pub *queue.Publisher, cons *queue.Consumer) error {
	return o.pump(ctx, cfg, sess.Addr().String(), sess, publisherDL{pub}, cons)
}

// publisherDL adapts queue.Publisher to deadLetterer.
type publisherDL struct{ *queue.Publisher }

func (p publisherDL) DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string) (confirmation, error) {
	return p.Publisher.DeadLetter(ctx, q, d, reason)
}

// pump moves deliveries into the stream until it fails or ctx is done.
func (o *outbound) pump(ctx context.Context, cfg *Config, addr string, sess stream, pub deadLetterer, cons consumer) error {
	p := pipe{o: o, sess: sess, pub: pub, cons: cons, addr: addr, dlq: cfg.AMQP.DeadLetterQueue,
		barrierEvery: max(1, cfg.AMQP.Prefetch/4)}
	if err := p.encoder(); err != nil {
		return err
	}
	deliveries := cons.Deliveries()
	stop := ctx.Done()
	for {
		select {
		case <-stop:
			// Graceful: no new deliveries; what the broker already sent
			// arrives on deliveries, which then closes.
			stop = nil
			p.draining = true
			if err := cons.Cancel(); err != nil {
				return fmt.Errorf("%w: cancel: %w", errConsumerLost, err)
			}
		case d, ok := <-deliveries:
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
			for len(o.buf) < maxBatchBytes && p.taken < maxBatchItems {
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
		DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string) (confirmation, error)
		Done() <-chan struct{}
		Err() error
	}
	confirmation interface {
		Wait(ctx context.Context) error
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
	barrierEvery int // items written without a barrier before one is forced
	draining     bool
	taken        int // items in the batch being built
}

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
		case <-p.sess.Done():
			return r, fmt.Errorf("xmpp session ended: %v", p.sess.Err())
		}
	}
}

// take encodes one delivery into the batch, or dead-letters it.
func (p *pipe) take(d *amqp.Delivery) error {
	o := p.o
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
	o.buf, info, err = p.enc.Append(o.buf, d.Body, meta)
	if err != nil {
		if res != nil {
			res.Cancel() // nothing goes out for it
		}
		reason := "invalid"
		var ie *stanza.ItemError
		if errors.As(err, &ie) {
			reason = string(ie.Reason)
		}
		c, perr := p.pub.DeadLetter(context.Background(), p.dlq, d, err.Error())
		if perr != nil {
			o.g.metrics.PublishFailures.WithLabelValues("dead_letter").Inc()
			return fmt.Errorf("dead-letter to %s: %w", p.dlq, perr)
		}
		o.log.Warn("item dead-lettered", "reason", err.Error(), "message_id", d.MessageId, "delivery_tag", d.DeliveryTag)
		o.g.metrics.DeadLetters.WithLabelValues(reason).Inc()
		b.confirms = append(b.confirms, c)
		b.dead++
	} else {
		b.sent++
		b.enq = append(b.enq, info.EnqueuedAt)
		if info.Kind == "presence" && o.g.pres != nil {
			o.g.pres.sent(&info) // never blocks
		}
	}
	b.lastTag = d.DeliveryTag
	p.taken++
	return nil
}

// items counts the items of the batch, sent or dead-lettered.
func (b *batch) items() int { return b.sent + b.dead }

// flush writes the batch. It adds a barrier when none is in flight, when
// enough items went out without one, or while draining; otherwise the items
// ride on the next barrier, so that there is about one ping per round trip
// and not one per write.
func (p *pipe) flush() error {
	o := p.o
	p.taken = 0
	if o.open.empty() {
		return nil
	}
	if len(o.pending) == 0 || o.open.items() >= p.barrierEvery || p.draining {
		return p.barrier()
	}
	err := p.sess.Write(o.buf)
	o.buf = o.buf[:0]
	o.g.metrics.OutboundInFlight.Set(float64(p.inFlight()))
	return err
}

// barrier writes the buffer (possibly empty) and a ping, and moves the open
// batch to pending.
func (p *pipe) barrier() error {
	o := p.o
	seq, err := p.sess.WriteWithBarrier(o.buf)
	o.buf = o.buf[:0]
	if err != nil {
		return err
	}
	o.open.seq = seq
	o.pending = append(o.pending, o.open)
	o.open = o.newBatch()
	o.g.metrics.OutboundInFlight.Set(float64(p.inFlight()))
	return nil
}

func (p *pipe) inFlight() int {
	n := p.o.open.items()
	for _, b := range p.o.pending {
		n += b.items()
	}
	return n
}

// dlConfirmTimeout bounds the wait for the broker to confirm a dead letter.
const dlConfirmTimeout = 30 * time.Second

// confirm acks every batch whose barrier the server answered.
func (p *pipe) confirm() error {
	o := p.o
	done := p.sess.Confirmed()
	n := 0
	for n < len(o.pending) && o.pending[n].seq <= done {
		n++
	}
	if n == 0 {
		return nil
	}
	for _, b := range o.pending[:n] {
		for _, c := range b.confirms {
			ctx, cancel := context.WithTimeout(context.Background(), dlConfirmTimeout)
			err := c.Wait(ctx)
			cancel()
			if err != nil {
				o.g.metrics.PublishFailures.WithLabelValues("dead_letter").Inc()
				// Not acking: closing the consumer requeues the item, and
				// it is dead-lettered again on redelivery.
				return fmt.Errorf("dead letter not confirmed: %w", err)
			}
		}
	}
	if err := p.cons.Ack(o.pending[n-1].lastTag, true); err != nil {
		return fmt.Errorf("%w: ack: %w", errConsumerLost, err)
	}
	now := time.Now()
	var sent, dead int
	for _, b := range o.pending[:n] {
		sent += b.sent
		dead += b.dead
		for _, t := range b.enq {
			if !t.IsZero() {
				o.g.metrics.Lag.Observe(max(0, now.Sub(t).Seconds()))
			}
		}
		o.recycle(b)
	}
	o.pending = append(o.pending[:0], o.pending[n:]...)
	m := o.g.metrics
	m.OutboundItems.WithLabelValues(resultSent).Add(float64(sent))
	if dead > 0 {
		m.OutboundItems.WithLabelValues(resultDeadLettered).Add(float64(dead))
	}
	// Items written without a barrier need one now that none is in flight.
	if len(o.pending) == 0 && !o.open.empty() {
		return p.barrier()
	}
	m.OutboundInFlight.Set(float64(p.inFlight()))
	return nil
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
	deadline := time.NewTimer(drainTimeout)
	defer deadline.Stop()
	for len(o.pending) > 0 {
		select {
		case <-p.sess.Notify():
			if err := p.confirm(); err != nil {
				return err
			}
		case <-p.sess.Done():
			return fmt.Errorf("xmpp session ended while draining: %v", p.sess.Err())
		case <-deadline.C:
			o.log.Warn("drain timed out; unconfirmed items stay in the queue", "items", p.inFlight())
			return nil
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
