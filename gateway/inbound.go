package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/component"
	"xmppgw/gateway/internal/lograte"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// The events held between the XMPP reader and the broker's confirm (in the
// buffer or published and awaiting the confirm) are bounded in number and
// in bytes of text and payload. At either bound the XMPP reader waits
// (offerWait), and refuses (type wait) only a broker that is down,
// blocking or stuck. The bounds keep memory flat whatever the flood: 4,096
// in flight covers more than a confirm round trip at the broker's full
// rate; 16 MiB is 64 messages at the largest text and payload.
const (
	inboundBuffer      = 4096
	inboundBufferBytes = 16 << 20
)

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
// filled by the XMPP read loop (which waits while it is full and the broker
// confirms: offerWait), and one publishing loop.
type inbound struct {
	g        *Gateway
	log      *slog.Logger
	ch       chan inItem
	ids      atomic.Uint64
	idPfx    string
	warn     lograte.Sampler
	held     atomic.Int64  // events buffered or awaiting a confirm: at most inboundBuffer
	bytes    atomic.Int64  // their size (eventSize)
	progress atomic.Int64  // UnixNano of the last release of an event
	space    chan struct{} // signalled when room is freed in the buffer
	closing  chan struct{} // closed by close
	wait     time.Duration // tests: the stuck period if ≥ 0 (else inbound.blocked_wait)

	// gate closes the buffer when the drain begins: from then on messages
	// are refused at once, so none is left behind in a buffer nobody
	// reads. offer holds it shared, close exclusively.
	gate   sync.RWMutex
	closed bool

	refusals refusalBacklog // refusals whose session was gone

	// publisher returns the broker connection events go to (nil while
	// down) and a channel closed when that changes.
	publisher func() (eventPublisher, <-chan struct{})
	grace     time.Duration // outageGrace
	drain     time.Duration // drainTimeout
}

// eventPublisher is what inbound needs of a queue.Publisher.
type eventPublisher interface {
	PublishNotify(ctx context.Context, key string, msg amqp.Publishing, mandatory bool, notify chan<- struct{}) (confirmation, error)
	Blocked() bool
	// Cork holds the publishes that follow until Uncork sends them
	// together (queue.Publisher.Cork).
	Cork()
	Uncork()
}

// publisherEvents adapts queue.Publisher to eventPublisher.
type publisherEvents struct{ *queue.Publisher }

func (p publisherEvents) PublishNotify(ctx context.Context, key string, msg amqp.Publishing, mandatory bool, notify chan<- struct{}) (confirmation, error) {
	c, err := p.Publisher.PublishNotify(ctx, key, msg, mandatory, notify)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

// eventPublisher is the current publisher as an eventPublisher.
func (g *Gateway) eventPublisher() (eventPublisher, <-chan struct{}) {
	p, changed := g.publisher.next()
	if p == nil {
		return nil, changed
	}
	return publisherEvents{p}, changed
}

// eventSize is what an event counts against inboundBufferBytes: every
// string it holds, plus the fixed overhead of the item and its JSON.
func eventSize(ev *stanza.Event) int64 {
	return int64(len(ev.Kind)+len(ev.ID)+len(ev.From)+len(ev.To)+len(ev.Type)+
		len(ev.Text)+len(ev.Subject)+len(ev.Thread)+len(ev.Payload)+
		len(ev.Condition)+len(ev.Show)+len(ev.Status)+len(ev.Replace)+len(ev.Encrypted)+len(ev.Room)+len(ev.Nick)) + 256
}

func newInbound(g *Gateway) *inbound {
	return &inbound{
		g:         g,
		log:       g.log.With("component", "inbound"),
		ch:        make(chan inItem, inboundBuffer),
		space:     make(chan struct{}, 1),
		closing:   make(chan struct{}),
		wait:      -1,
		grace:     outageGrace,
		drain:     drainTimeout,
		publisher: g.eventPublisher,
		idPfx:     "xg" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
	}
}

func (in *inbound) offer(s *component.Session, ev *stanza.Event) {
	in.offerWait(s, ev, true)
}

// offerWait queues ev, or refuses it. With wait, a full buffer holds the
// caller (the XMPP read loop: TCP then pushes back on the server and on
// the senders) for as long as the broker keeps confirming events; it
// refuses only when the broker is down or blocking, or has confirmed
// nothing for the stuck period (inbound.blocked_wait).
func (in *inbound) offerWait(s *component.Session, ev *stanza.Event, wait bool) {
	if ev.ID == "" {
		ev.ID = in.idPfx + strconv.FormatUint(in.ids.Add(1), 36)
	}
	cfg := in.g.cfg.Load()
	key, route := cfg.AMQP.InQueue, routeDefault
	if cfg.XMPP.Mode == stanza.ModeComponent {
		if local, _, ok := strings.Cut(ev.To, "@"); ok {
			if q, ok := cfg.Inbound.Routes[local]; ok {
				key, route = q, local
			}
		}
	}
	it := inItem{ev: *ev, sess: s, key: key, route: route}
	size := eventSize(ev)
	var (
		deadline time.Time
		timer    *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		pub, changed := in.publisher()
		if pub == nil {
			in.refuse(s, ev, "broker_down")
			return
		}
		switch in.admit(&it, size) {
		case admitted:
			return
		case admitClosed:
			in.refuse(s, ev, "shutdown")
			return
		}
		// Full.
		if pub.Blocked() {
			in.refuse(s, ev, "blocked")
			return
		}
		stuck := in.stuckAfter(cfg)
		if !wait || stuck <= 0 {
			in.refuse(s, ev, "buffer_full")
			return
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(stuck)
		}
		if p := time.Unix(0, in.progress.Load()).Add(stuck); p.After(deadline) {
			deadline = p // the broker confirmed something: wait on
		}
		d := deadline.Sub(now)
		if d <= 0 {
			in.refuse(s, ev, "buffer_full")
			return
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-in.space:
		case <-changed:
		case <-in.closing:
		case <-timer.C:
		}
	}
}

// admit outcomes.
const (
	admitted = iota
	admitFull
	admitClosed
)

// admit puts it into the buffer if there is room in number (events
// buffered or awaiting a confirm) and in bytes.
func (in *inbound) admit(it *inItem, size int64) int {
	in.gate.RLock()
	defer in.gate.RUnlock()
	if in.closed {
		return admitClosed
	}
	if in.held.Add(1) > inboundBuffer {
		in.held.Add(-1)
		return admitFull
	}
	if in.bytes.Add(size) > inboundBufferBytes {
		in.bytes.Add(-size)
		in.held.Add(-1)
		return admitFull
	}
	in.ch <- *it // never blocks: the channel holds at most held events
	in.g.metrics.InboundBuffer.Inc()
	return admitted
}

// stuckAfter is how long a full buffer waits for the broker to confirm
// something before messages are refused: inbound.blocked_wait, at least a
// second (tests set wait).
func (in *inbound) stuckAfter(cfg *Config) time.Duration {
	if in.wait >= 0 {
		return in.wait
	}
	return max(cfg.Inbound.BlockedWait, time.Second)
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
	in.offerWait(nil, ev, false)
}

// close refuses every later offer; what is buffered stays for the drain.
func (in *inbound) close() {
	in.gate.Lock()
	if !in.closed {
		in.closed = true
		close(in.closing)
	}
	in.gate.Unlock()
}

// refuse tells the sender that its message was not queued (type wait: try
// again later) and counts it. Only messages are answered: never an error,
// and presence or subscription events have no sender waiting. When the
// message's session is gone the refusal goes out on the current one, or on
// the next one if there is none (refusalBacklog).
func (in *inbound) refuse(s *component.Session, ev *stanza.Event, reason string) {
	in.g.metrics.InboundRefused.WithLabelValues(reason).Inc()
	if in.warn.OK() {
		in.log.Warn("inbound message refused", "reason", reason, "kind", ev.Kind, "id", ev.ID)
	}
	if ev.Kind != "message" || s == nil {
		return
	}
	r := refusal{id: ev.ID, from: ev.From, to: ev.To, reason: reason, sess: s}
	if in.sendRefusal(s, &r) {
		return
	}
	if cur := in.g.sess.get(); cur != nil && cur != s && in.sendRefusal(cur, &r) {
		return
	}
	in.refusals.add(r, in.log)
}

// sendRefusal writes r on session s, reporting whether it went out.
func (in *inbound) sendRefusal(s *component.Session, r *refusal) bool {
	select {
	case <-s.Done():
		return false
	default:
	}
	orig := stanza.Event{ID: r.id, From: r.from, To: r.to}
	if s != r.sess && in.g.cfg.Load().XMPP.Mode == stanza.ModeClient {
		// Another stream of the account may have another resource: let
		// the server stamp our address.
		orig.To = ""
	}
	b := stanza.AppendMessageError(nil, &orig, "wait", "resource-constraint",
		"The gateway could not queue this message ("+r.reason+"); try again later.")
	return s.Write(b) == nil
}

// online sends the refusals that waited for a session.
func (in *inbound) online(s *component.Session) {
	for _, r := range in.refusals.take() {
		if !in.sendRefusal(s, &r) {
			in.refusals.add(r, in.log)
		}
	}
}

// refusal is a stanza error owed to the sender of a message.
type refusal struct {
	id, from, to, reason string
	sess                 *component.Session // the session the message came on
}

// refusalBacklog holds refusals while no session can carry them, bounded:
// past the bound the oldest are dropped (logged and counted as lost; the
// sender's client sees no answer, as when the gateway crashes).
type refusalBacklog struct {
	mu    sync.Mutex
	rs    []refusal
	bytes int
	lost  int
}

// Bounds of refusalBacklog.
const (
	refusalBacklogMax   = 4096
	refusalBacklogBytes = 4 << 20
)

func (b *refusalBacklog) add(r refusal, log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	size := len(r.id) + len(r.from) + len(r.to) + 64
	for len(b.rs) > 0 && (len(b.rs) >= refusalBacklogMax || b.bytes+size > refusalBacklogBytes) {
		b.bytes -= len(b.rs[0].id) + len(b.rs[0].from) + len(b.rs[0].to) + 64
		b.rs[0] = refusal{}
		b.rs = b.rs[1:]
		b.lost++
		if b.lost == 1 || b.lost%1000 == 0 {
			log.Error("refusals lost: no XMPP session to carry them and the backlog is full", "lost", b.lost)
		}
	}
	b.rs = append(b.rs, r)
	b.bytes += size
}

func (b *refusalBacklog) take() []refusal {
	b.mu.Lock()
	defer b.mu.Unlock()
	rs := b.rs
	b.rs, b.bytes = nil, 0
	return rs
}

func (b *refusalBacklog) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.rs)
}
