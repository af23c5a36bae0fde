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
	"xmppgw/gateway/config"
	"xmppgw/gateway/internal/lograte"
	"xmppgw/gateway/metrics"
	"xmppgw/queue"
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
	seq     uint64 // barrier sequence number; 0 while open (no barrier yet)
	lastTag uint64
	sent    int
	dls     []deadLetter // its items bound for the dead-letter queue
	dlDone  int          // dls[:dlDone] are confirmed by the broker
	enq     []time.Time  // enqueue times of the sent items, for the lag
	keys    []uint64     // redelivered items it holds, forgotten once acked
	opened  time.Time    // when its first item was taken
}

func (b *batch) empty() bool { return b.sent == 0 && len(b.dls) == 0 }

// taking marks the batch opened when it takes its first item.
func (b *batch) taking() {
	if b.empty() {
		b.opened = time.Now()
	}
}

// items counts the items of the batch, sent or dead-lettered.
func (b *batch) items() int { return b.sent + len(b.dls) }

func (b *batch) clear() {
	clear(b.dls) // drop the bodies
	*b = batch{dls: b.dls[:0], enq: b.enq[:0], keys: b.keys[:0]}
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
	drain   time.Duration // bounds the wait for the last barrier: drainTimeout
	gen     atomic.Uint64 // bumped by a reload: rebuild the encoder

	barrierDelay time.Duration // see the constant

	redelivered *redeliveries // redelivered items not yet acked
	ledger      *ledger       // the suspect's count across restarts; nil without a file store
	// suspect is the redelivered item written alone and not yet confirmed
	// (0 if none): the one to blame if the server ends the stream now.
	suspect uint64
	dlWarn  lograte.Sampler
	// parked counts, per room, the items in the wait queue (outbound_rooms.go).
	parked map[string]int
}

func newOutbound(g *Gateway) *outbound {
	o := &outbound{
		g:            g,
		log:          g.log.With("component", "outbound"),
		parked:       map[string]int{},
		buf:          make([]byte, 0, maxBatchBytes+64<<10),
		open:         &batch{},
		limiter:      rate.NewLimiter(rate.Inf, 1),
		drain:        drainTimeout,
		barrierDelay: barrierDelay,
		// Prefetch bounds the items in flight, so the tracked ones too.
		redelivered: newRedeliveries(max(10_000, 2*g.cfg.Load().AMQP.Prefetch)),
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
		dctx, cancel := context.WithTimeout(ctx, walkTimeout(len(queue.SplitURLs(cfg.AMQP.URL))))
		cons, err := queue.Consume(dctx, queue.ConsumerConfig{
			URL:      cfg.AMQP.URL,
			Queue:    cfg.AMQP.OutQueue,
			Prefetch: cfg.AMQP.Prefetch,
			Topology: cfg.Topology(),
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
			o.log.Warn("amqp consume failed", "queue", cfg.AMQP.OutQueue, "err", config.Redact(cfg, err.Error()), "retry_in", wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		o.log.Info("consuming", "queue", cfg.AMQP.OutQueue, "prefetch", cfg.AMQP.Prefetch, "url", cons.URL())
		up := time.Now()
		err = o.session(ctx, cfg, sess, pub, cons)
		_ = cons.Close() // the broker requeues whatever is still unacked
		select {
		case <-sess.Done():
			o.blame(sess.StreamErrorCondition())
		default: // the consumer ended, not the stream
		}
		o.reset()
		if err == nil { // drained after ctx was cancelled
			return nil
		}
		o.log.Warn("stopped consuming", "reason", err)
		bo.stable(time.Since(up))
		if errors.Is(err, errConsumerLost) {
			o.g.metrics.Reconnects.WithLabelValues(metrics.LinkAMQP).Inc()
			if !sleep(ctx, bo.next()) {
				return nil
			}
		}
		// Otherwise the stream or the publisher ended: the loop waits for
		// the next one, which backs off on its own.
	}
}

// blame counts a stream error that blames our input against the
// redelivered item that was alone in flight when the stream ended.
func (o *outbound) blame(cond string) {
	if o.suspect == 0 {
		return
	}
	if blameable(cond) {
		o.redelivered.blame(o.suspect)
		o.log.Warn("the XMPP server ended the stream while one redelivered item alone was in flight", "condition", cond)
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
	o.suspect = 0
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

func (p publisherDL) DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string, notify chan<- struct{}) (confirmation, error) {
	c, err := p.Publisher.DeadLetter(ctx, q, d, reason, notify)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}
