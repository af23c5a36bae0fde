package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/queue"
	"xmppgw/stanza"
)

func newTestGateway(t *testing.T, extra string) *Gateway {
	t.Helper()
	return testGateway(t, quietConfig(t)+extra, Deps{})
}

// TestInboundBufferBounded fills the buffer without a publisher loop: past
// the bound in bytes or in number, messages are refused, not held.
func TestInboundBufferBounded(t *testing.T) {
	g := newTestGateway(t, "")
	g.publisher.set(&queue.Publisher{}) // "up", never drained: no run loop
	g.in.wait = 0                       // refuse at once when full
	text := strings.Repeat("x", 64<<10)
	accepted := 0
	for i := 0; i < 2000; i++ {
		ev := &stanza.Event{Kind: "message", From: "a@example.org/r", To: "n@gw.example.org", Text: text}
		before := len(g.in.ch)
		g.in.offer(nil, ev)
		if len(g.in.ch) > before {
			accepted++
		}
	}
	if max := inboundBufferBytes / (64<<10 + 256); accepted > max || accepted < max-1 {
		t.Fatalf("accepted %d events of 64 KiB, want about %d (the byte bound)", accepted, max)
	}
	if got := g.in.bytes.Load(); got > inboundBufferBytes {
		t.Fatalf("buffered %d bytes, over the bound %d", got, inboundBufferBytes)
	}
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("buffer_full")); int(r) != 2000-accepted {
		t.Fatalf("refused{buffer_full} = %v, want %d", r, 2000-accepted)
	}

	// Small events hit the bound in number.
	g2 := newTestGateway(t, "")
	g2.publisher.set(&queue.Publisher{})
	g2.in.wait = 0
	for i := 0; i < inboundBuffer+100; i++ {
		g2.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	}
	if len(g2.in.ch) != inboundBuffer {
		t.Fatalf("buffered %d events, want the bound %d", len(g2.in.ch), inboundBuffer)
	}
}

func TestInboundRefusedWhileBrokerDown(t *testing.T) {
	g := newTestGateway(t, "")
	g.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	if len(g.in.ch) != 0 {
		t.Fatal("event buffered while the broker is down")
	}
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("broker_down")); r != 1 {
		t.Fatalf("refused{broker_down} = %v", r)
	}
}

func TestInboundRouting(t *testing.T) {
	g := newTestGateway(t, "inbound:\n  routes:\n    shop: q.shop\n")
	g.publisher.set(&queue.Publisher{})
	for i, tc := range []struct{ to, key, route string }{
		0: {"shop@gw.example.org", "q.shop", "shop"},
		1: {"shop@gw.example.org/res", "q.shop", "shop"},
		2: {"other@gw.example.org", "xmpp-in", "default"},
		3: {"gw.example.org", "xmpp-in", "default"},
	} {
		g.in.offer(nil, &stanza.Event{Kind: "message", To: tc.to, Text: "x"})
		it := <-g.in.ch
		if it.key != tc.key || it.route != tc.route {
			t.Errorf("%d: %s → key %q route %q, want %q %q", i, tc.to, it.key, it.route, tc.key, tc.route)
		}
		if it.ev.ID == "" {
			t.Errorf("%d: no id generated", i)
		}
	}
}

// TestInboundBackpressure: a full buffer holds the reader, instead of
// refusing, for as long as the broker keeps confirming events, even past
// the stuck period; it refuses once nothing was confirmed for that long.
func TestInboundBackpressure(t *testing.T) {
	g := newTestGateway(t, "")
	g.publisher.set(&queue.Publisher{})
	const stuck = time.Second
	g.in.wait = stuck
	for i := 0; i < inboundBuffer; i++ {
		g.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	}
	// A slow broker: it confirms something every 50 ms for 1.5 stuck
	// periods, without freeing room (another reader took it), then frees
	// one event's room.
	released := make(chan time.Time, 1)
	go func() {
		start := time.Now()
		for time.Since(start) < stuck*3/2 {
			g.in.progress.Store(time.Now().UnixNano())
			time.Sleep(50 * time.Millisecond)
		}
		released <- time.Now()
		<-g.in.ch
		g.in.held.Add(-1)
		g.in.progress.Store(time.Now().UnixNano())
		g.in.freed()
	}()
	g.in.offer(nil, &stanza.Event{Kind: "message", Text: "waited"})
	select {
	case <-released:
	default:
		t.Fatal("offer returned before the broker freed room")
	}
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("buffer_full")); r != 0 {
		t.Fatalf("refused %v while the broker made progress", r)
	}
	if len(g.in.ch) != inboundBuffer || g.in.held.Load() != inboundBuffer {
		t.Fatalf("buffer holds %d (held %d), want %d", len(g.in.ch), g.in.held.Load(), inboundBuffer)
	}
	// Nothing confirmed any more: refused once the stuck period passed
	// since the last progress.
	g.in.wait = 100 * time.Millisecond
	start := time.Now()
	g.in.offer(nil, &stanza.Event{Kind: "message", Text: "refused"})
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("buffer_full")); r != 1 {
		t.Fatalf("refused = %v after the broker stopped confirming", r)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("refused after %s: the reader did not wait for the broker at all", d)
	}
}

// TestInboundFullRefusedAtOnce: a full buffer does not hold the reader
// when waiting cannot help: the broker blocks publishers, the buffer was
// closed for the drain, or no sender waits (presence events).
func TestInboundFullRefusedAtOnce(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &blockingPublisher{}
	g.in.publisher = func() (eventPublisher, <-chan struct{}) { return pub, nil }
	g.in.wait = time.Hour
	for i := 0; i < inboundBuffer; i++ {
		g.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	}
	g.in.offerEvent(&stanza.Event{Kind: "presence"})
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("buffer_full")); r != 1 {
		t.Fatalf("presence event: refused{buffer_full} = %v, want 1 at once", r)
	}
	pub.blocked.Store(true)
	g.in.offer(nil, &stanza.Event{Kind: "message", Text: "x"})
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("blocked")); r != 1 {
		t.Fatalf("refused{blocked} = %v, want 1", r)
	}
	pub.blocked.Store(false)
	// A reader waiting when the drain begins is let go at once.
	asked := make(chan struct{}, 1)
	g.in.publisher = func() (eventPublisher, <-chan struct{}) {
		select {
		case asked <- struct{}{}:
		default:
		}
		return pub, nil
	}
	done := make(chan struct{})
	go func() {
		g.in.offer(nil, &stanza.Event{Kind: "message", Text: "y"})
		close(done)
	}()
	<-asked // the reader found the buffer full, or is about to
	g.in.close()
	<-done
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("shutdown")); r != 1 {
		t.Fatalf("refused{shutdown} = %v, want 1", r)
	}
}

// blockingPublisher is an eventPublisher whose block the test sets.
type blockingPublisher struct{ blocked atomic.Bool }

func (p *blockingPublisher) PublishNotify(context.Context, string, amqp.Publishing, bool, chan<- struct{}) (confirmation, error) {
	return nil, queue.ErrBlocked
}
func (p *blockingPublisher) Blocked() bool { return p.blocked.Load() }
func (p *blockingPublisher) Cork()         {}
func (p *blockingPublisher) Uncork()       {}

func TestInboundConfirmTimeout(t *testing.T) {
	now := time.Now()
	ev := func(age time.Duration) pendingEvent {
		return pendingEvent{c: &queue.Confirm{}, at: now.Add(-age)}
	}
	for i, tc := range []struct {
		ages []time.Duration
		want int
	}{
		0: {nil, 0},
		1: {[]time.Duration{time.Second}, 0},
		2: {[]time.Duration{31 * time.Second, 31 * time.Second, time.Second}, 2},
		3: {[]time.Duration{time.Second, 31 * time.Second}, 0}, // behind a young one: waits
	} {
		var p []pendingEvent
		for _, a := range tc.ages {
			p = append(p, ev(a))
		}
		if got := expired(p, now, confirmTimeout); got != tc.want {
			t.Errorf("%d: expired = %d, want %d", i, got, tc.want)
		}
	}
}

// fakeEvents is an eventPublisher whose confirms the test controls.
type fakeEvents struct {
	mu        sync.Mutex
	published []amqp.Publishing
	confirms  []*fakeConfirm
	auto      bool   // confirm at once
	corked    int    // Cork calls not yet matched by Uncork
	corks     int    // Cork calls
	held      []bool // per publish: made while corked
}

func (f *fakeEvents) PublishNotify(ctx context.Context, key string, msg amqp.Publishing, mandatory bool, notify chan<- struct{}) (confirmation, error) {
	if err := ctx.Err(); err != nil { // as queue.Publisher does
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msg.Body = append([]byte(nil), msg.Body...)
	f.published = append(f.published, msg)
	f.held = append(f.held, f.corked > 0)
	c := &fakeConfirm{notify: notify}
	f.confirms = append(f.confirms, c)
	if f.auto {
		defer c.resolve(nil)
	}
	return c, nil
}

func (f *fakeEvents) Blocked() bool { return false }

func (f *fakeEvents) Cork() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corked++
	f.corks++
}

func (f *fakeEvents) Uncork() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.corked == 0 {
		panic("Uncork without Cork")
	}
	f.corked--
}

func (f *fakeEvents) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.published)
}

// usePublisher makes g's inbound publish to p (nil: the broker is down).
func usePublisher(g *Gateway, p func() eventPublisher) {
	never := make(chan struct{})
	g.in.publisher = func() (eventPublisher, <-chan struct{}) { return p(), never }
}

func refusedTotal(g *Gateway) float64 {
	return testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("broker_down")) +
		testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("shutdown")) +
		testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("blocked"))
}

// A graceful stop publishes what is buffered: the drain's publishes must
// not use the cancelled context of the stop.
func TestInboundDrainPublishesBuffered(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &fakeEvents{auto: true}
	usePublisher(g, func() eventPublisher { return pub })
	for i := range 100 {
		g.in.offer(nil, &stanza.Event{Kind: "message", ID: fmt.Sprint(i), Text: "hi"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopping before the loop even starts
	if err := g.in.run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pub.count(); n != 100 {
		t.Fatalf("published %d of 100 buffered events during the drain (refused %v %v %v, buffered %d)", n, testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("broker_down")), testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("shutdown")), testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("blocked")), len(g.in.ch))
	}
	if v := testutil.ToFloat64(g.metrics.InboundEvents.WithLabelValues("message", routeDefault)); v != 100 {
		t.Fatalf("events confirmed = %v", v)
	}
	if r := refusedTotal(g); r != 0 {
		t.Fatalf("%v refused", r)
	}
	// After the drain began, nothing is buffered any more: refused at once.
	g.in.offer(nil, &stanza.Event{Kind: "message", Text: "late"})
	if len(g.in.ch) != 0 || testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("shutdown")) != 1 {
		t.Fatalf("a message after the drain was buffered (%d) or not refused", len(g.in.ch))
	}
}

// The events of one batch are published corked, to leave in one write,
// and every batch uncorks at its end.
func TestInboundBatchCorked(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &fakeEvents{auto: true}
	usePublisher(g, func() eventPublisher { return pub })
	const n = inBatch + 36
	for i := range n {
		g.in.offer(nil, &stanza.Event{Kind: "message", ID: fmt.Sprint(i), Text: "hi"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // drain what is buffered
	if err := g.in.run(ctx); err != nil {
		t.Fatal(err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.published) != n {
		t.Fatalf("published %d of %d", len(pub.published), n)
	}
	for i, held := range pub.held {
		if !held {
			t.Fatalf("publish %d was not corked", i)
		}
	}
	if pub.corks != 2 || pub.corked != 0 {
		t.Fatalf("%d corks for %d events in batches of %d, %d left corked; want 2 and 0", pub.corks, n, inBatch, pub.corked)
	}
}

// A drain that runs out of time refuses what is left, so that every
// sender hears back, and returns.
func TestInboundDrainTimesOut(t *testing.T) {
	g := newTestGateway(t, "")
	g.in.drain = 100 * time.Millisecond
	pub := &fakeEvents{} // never confirms
	usePublisher(g, func() eventPublisher { return pub })
	for range 5 {
		g.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- g.in.run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("drain did not end")
	}
	if r := testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("shutdown")); r != 5 {
		t.Fatalf("refused{shutdown} = %v, want 5", r)
	}
	if g.in.bytes.Load() != 0 {
		t.Fatalf("%d bytes still counted in the buffer", g.in.bytes.Load())
	}
}

// Events buffered when the broker goes away are refused after a grace
// period, not kept forever.
func TestInboundBufferedRefusedAfterOutage(t *testing.T) {
	g := newTestGateway(t, "")
	g.in.grace = 10 * time.Millisecond
	var mu sync.Mutex
	var cur eventPublisher = &fakeEvents{}
	usePublisher(g, func() eventPublisher { mu.Lock(); defer mu.Unlock(); return cur })
	for range 10 {
		g.in.offer(nil, &stanza.Event{Kind: "message", Text: "hi"})
	}
	mu.Lock()
	cur = nil // down before the loop took them
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.in.run(ctx) }()
	defer func() { cancel(); <-done }()
	testkit.Eventually(t, "buffered events refused", func() bool {
		return testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("broker_down")) == 10
	})
	if len(g.in.ch) != 0 {
		t.Fatalf("%d events still buffered", len(g.in.ch))
	}
}

// The backlog of refusals that wait for a session is bounded.
func TestRefusalBacklogBounded(t *testing.T) {
	var b refusalBacklog
	log := slog.New(slog.DiscardHandler)
	for i := range refusalBacklogMax + 100 {
		b.add(refusal{id: fmt.Sprint(i), from: "a@example.org/r", to: "n@gw.example.org"}, log)
	}
	if b.len() != refusalBacklogMax || b.lost != 100 {
		t.Fatalf("backlog %d, lost %d", b.len(), b.lost)
	}
	big := strings.Repeat("x", 64<<10)
	for range 100 {
		b.add(refusal{id: big}, log)
	}
	if b.bytes > refusalBacklogBytes {
		t.Fatalf("backlog holds %d bytes, over %d", b.bytes, refusalBacklogBytes)
	}
	if rs := b.take(); len(rs) == 0 || b.len() != 0 {
		t.Fatal("take did not empty the backlog")
	}
}

// An id longer than an AMQP short string stays in the event, not in the
// message-id property, so that the publish does not fail.
func TestInboundLongIDPublished(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &fakeEvents{auto: true}
	usePublisher(g, func() eventPublisher { return pub })
	long := strings.Repeat("i", 300)
	g.in.offer(nil, &stanza.Event{Kind: "message", ID: long, Text: "hi"})
	g.in.offer(nil, &stanza.Event{Kind: "message", ID: "short", Text: "hi"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.in.run(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.count() != 2 {
		t.Fatalf("published %d", pub.count())
	}
	if m := pub.published[0]; m.MessageId != "" || !strings.Contains(string(m.Body), long) {
		t.Fatalf("long id: message-id %q", m.MessageId)
	}
	if m := pub.published[1]; m.MessageId != "short" {
		t.Fatalf("short id: message-id %q", m.MessageId)
	}
}
