package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/component"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// The events held between the XMPP reader and the broker's confirm are
// bounded in number and in bytes of text and payload; past either bound new
// messages are refused (type wait) until the broker catches up.
const (
	inboundBuffer      = 4096
	inboundBufferBytes = 32 << 20
)

// inboundLimits bound what the gateway accepts in one inbound stanza.
var inboundLimits = stanza.Limits{MaxTextBytes: 256 << 10, MaxPayloadBytes: 256 << 10, MaxDepth: 32}

// routeDefault labels events that no inbound route matched.
const routeDefault = "default"

// inItem is one event on its way to the broker.
type inItem struct {
	ev    stanza.Event
	sess  *component.Session // where to send a refusal
	key   string             // routing key (queue)
	route string             // metric label: the route's localpart or "default"
}

// inbound turns XMPP messages into events on the broker: a bounded buffer
// filled by the XMPP read loop without blocking, and one publishing loop.
type inbound struct {
	g     *Gateway
	log   *slog.Logger
	ch    chan inItem
	ids   atomic.Uint64
	idPfx string
	warn  sampler
	bytes atomic.Int64  // size of the events buffered or awaiting a confirm
	space chan struct{} // signalled when room is freed in the buffer
	wait  time.Duration // how long a full buffer holds the reader: backpressureWait
}

// backpressureWait bounds how long the XMPP reader waits for room in a full
// buffer while the broker is up, before it refuses the message.
const backpressureWait = time.Second

// size is what an event counts against inboundBufferBytes.
func eventSize(ev *stanza.Event) int64 {
	return int64(len(ev.Text) + len(ev.Payload) + len(ev.Subject) + len(ev.Thread) + 256)
}

func newInbound(g *Gateway) *inbound {
	return &inbound{
		g:     g,
		log:   g.log.With("component", "inbound"),
		ch:    make(chan inItem, inboundBuffer),
		space: make(chan struct{}, 1),
		wait:  backpressureWait,
		idPfx: "xg" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
	}
}

// Message implements component.Inbound: it is called on the XMPP read loop
// and never blocks.
func (g *Gateway) Message(s *component.Session, ev *stanza.Event) {
	if ev.Kind == "error" {
		g.metrics.Bounces.WithLabelValues(conditionLabel(ev.Condition)).Inc()
	}
	g.in.offer(s, ev)
}

// conditionLabel keeps the bounce label set bounded to the RFC 6120
// conditions (anything else is "other").
func conditionLabel(c string) string {
	switch c {
	case "bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
		"internal-server-error", "item-not-found", "jid-malformed", "not-acceptable",
		"not-allowed", "not-authorized", "policy-violation", "recipient-unavailable",
		"redirect", "registration-required", "remote-server-not-found",
		"remote-server-timeout", "resource-constraint", "service-unavailable",
		"subscription-required", "undefined-condition", "unexpected-request":
		return c
	}
	return "other"
}

func (in *inbound) offer(s *component.Session, ev *stanza.Event) {
	if ev.ID == "" {
		ev.ID = in.idPfx + strconv.FormatUint(in.ids.Add(1), 36)
	}
	cfg := in.g.cfg.Load()
	key, route := cfg.AMQP.InQueue, routeDefault
	if cfg.XMPP.Mode == ModeComponent {
		if local, _, ok := strings.Cut(ev.To, "@"); ok {
			if q, ok := cfg.Inbound.Routes[local]; ok {
				key, route = q, local
			}
		}
	}
	pub := in.g.publisher.get()
	if pub == nil {
		in.refuse(s, ev, "broker_down")
		return
	}
	it := inItem{ev: *ev, sess: s, key: key, route: route}
	size := eventSize(ev)
	var timeout <-chan time.Time
	for {
		if in.bytes.Add(size) <= inboundBufferBytes {
			select {
			case in.ch <- it:
				in.g.metrics.InboundBuffer.Inc()
				return
			default:
			}
		}
		in.bytes.Add(-size)
		// Full. While the broker is up and takes events, hold the reader
		// for a moment (TCP pushes back on the server) rather than refuse:
		// a burst is then absorbed. Refuse when the broker is gone or
		// blocking, or when the buffer does not drain in time.
		if in.g.publisher.get() == nil || pub.Blocked() || in.wait <= 0 {
			in.refuse(s, ev, "buffer_full")
			return
		}
		if timeout == nil {
			t := time.NewTimer(in.wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-in.space:
		case <-timeout:
			in.refuse(s, ev, "buffer_full")
			return
		}
	}
}

// freed wakes an offer waiting for room in the buffer.
func (in *inbound) freed() {
	select {
	case in.space <- struct{}{}:
	default:
	}
}

// offerEvent queues an event that no sender waits on (presence,
// subscription) without blocking. A refused event is counted and logged.
func (in *inbound) offerEvent(ev *stanza.Event) {
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now().UTC()
	}
	in.offer(nil, ev)
}

// refuse tells the sender that its message was not queued (type wait: try
// again later) and counts it. Only messages are answered: never an error,
// and presence or subscription events have no sender waiting.
func (in *inbound) refuse(s *component.Session, ev *stanza.Event, reason string) {
	in.g.metrics.InboundRefused.WithLabelValues(reason).Inc()
	if in.warn.ok() {
		in.log.Warn("inbound message refused", "reason", reason, "kind", ev.Kind, "id", ev.ID)
	}
	if ev.Kind != "message" || s == nil {
		return
	}
	select {
	case <-s.Done():
		return
	default:
	}
	b := stanza.AppendMessageError(nil, ev, "wait", "resource-constraint",
		"The gateway could not queue this message ("+reason+"); try again later.")
	_ = s.Write(b)
}

// pendingEvent is an event published and waiting for its confirm.
type pendingEvent struct {
	c  *queue.Confirm
	it inItem
	at time.Time // when it was published (to the loop's clock)
}

// confirmTimeout bounds the wait for the broker's confirm of an event while
// the connection stays up; past it the sender is told (type wait). If the
// confirm still comes, the event is queued too: a duplicate at worst if the
// sender sends again, never a silent loss.
const confirmTimeout = 30 * time.Second

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

// inBatch bounds how many buffered events (or settled confirms) the run
// loop handles per wake-up before it looks at everything else again.
const inBatch = 64

// counterKey names a child of InboundEvents.
type counterKey struct{ kind, route string }

// run publishes buffered events, pipelined: it keeps publishing while
// confirms are outstanding and settles them in order.
func (in *inbound) run(ctx context.Context) error {
	var buf []byte
	var pending []pendingEvent
	// The children of InboundEvents, looked up once per kind and route.
	counters := make(map[counterKey]prometheus.Counter)
	release := func(it *inItem) {
		in.g.metrics.InboundBuffer.Dec()
		in.bytes.Add(-eventSize(&it.ev))
		in.freed()
	}
	settle := func(pe *pendingEvent) {
		release(&pe.it)
		err := pe.c.Err()
		if err == nil {
			k := counterKey{pe.it.ev.Kind, pe.it.route}
			c, ok := counters[k]
			if !ok {
				c = in.g.metrics.InboundEvents.WithLabelValues(k.kind, k.route)
				counters[k] = c
			}
			c.Inc()
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
	// Every Confirm signals settled once it resolves.
	settled := make(chan struct{}, 1)
	// settleReady settles the front of pending while it is resolved, at
	// most inBatch: the same as that many turns of the loop taking front.
	settleReady := func() {
		for n := 0; len(pending) > 0 && pending[0].c.Resolved(); n++ {
			if n == inBatch {
				// More are ready: come back after looking at the rest.
				select {
				case settled <- struct{}{}:
				default:
				}
				return
			}
			settle(&pending[0])
			pending[0] = pendingEvent{}
			pending = pending[1:]
		}
	}
	now := time.Now()
	publish := func(it *inItem, pub *queue.Publisher) {
		in.freed() // a slot of the channel
		if pub == nil {
			release(it)
			in.refuse(it.sess, &it.ev, "broker_down")
			return
		}
		buf = it.ev.AppendJSON(buf[:0])
		c, err := pub.PublishNotify(ctx, it.key, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			Type:         it.ev.Kind,
			MessageId:    it.ev.ID,
			Timestamp:    it.ev.ReceivedAt,
			Body:         buf,
		}, true, settled)
		if err != nil {
			release(it)
			in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
			in.refuse(it.sess, &it.ev, "broker_down")
			return
		}
		pending = append(pending, pendingEvent{c: c, it: *it, at: now})
	}
	stopping := ctx.Done()
	var drainBy <-chan time.Time
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if stopping == nil && len(in.ch) == 0 && len(pending) == 0 {
			return nil
		}
		pub := in.g.publisher.get()
		var items chan inItem
		if pub != nil || stopping == nil {
			items = in.ch
		}
		select {
		case <-stopping:
			// Drain what is buffered, bounded in time.
			stopping = nil
			t := time.NewTimer(drainTimeout)
			defer t.Stop()
			drainBy = t.C
		case <-drainBy:
			in.log.Warn("inbound drain timed out", "pending", len(pending)+len(in.ch))
			return nil
		case <-settled:
			settleReady()
		case now = <-tick.C:
			for n := expired(pending, now, confirmTimeout); n > 0; n-- {
				release(&pending[0].it)
				in.g.metrics.PublishFailures.WithLabelValues("event").Inc()
				in.log.Error("no confirm from the broker in time; the sender is told", "timeout", confirmTimeout, "id", pending[0].it.ev.ID)
				in.refuse(pending[0].it.sess, &pending[0].it.ev, "timeout")
				pending[0] = pendingEvent{}
				pending = pending[1:]
			}
		case it := <-items:
			now = time.Now()
			publish(&it, pub)
			// Take what else is buffered, as further turns of the loop
			// would, without going back to sleep in between.
			for n := 1; n < inBatch; n++ {
				pub = in.g.publisher.get()
				if pub == nil && stopping != nil {
					break
				}
				select {
				case it = <-in.ch:
				default:
					n = inBatch
					continue
				}
				publish(&it, pub)
			}
			settleReady()
		case <-in.g.publisher.changedOrNever(pub):
			// the publisher came up or went down: re-evaluate
		}
	}
}

// sampler allows one log line per second, so that a flood of refusals does
// not flood the log too (the metrics count every one).
type sampler struct{ last atomic.Int64 }

func (s *sampler) ok() bool {
	now := time.Now().UnixNano()
	last := s.last.Load()
	return now-last >= int64(time.Second) && s.last.CompareAndSwap(last, now)
}
