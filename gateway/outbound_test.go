package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"
	xstream "mellium.im/xmpp/stream"

	"xmppgw/component"
	"xmppgw/gateway/internal/testkit"
	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// fakeStream records writes; the test answers barriers with confirm.
type fakeStream struct {
	mu        sync.Mutex
	writes    []string
	barriers  []int // index into writes of each barrier write
	seq       uint64
	confirmed uint64
	notify    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	err       error // set before kill
}

func (f *fakeStream) kill() { f.closeOnce.Do(func() { close(f.done) }) }

func newFakeStream() *fakeStream {
	return &fakeStream{notify: make(chan struct{}, 1), done: make(chan struct{})}
}

func (f *fakeStream) Write(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, string(p))
	return nil
}

func (f *fakeStream) WriteWithBarrier(p []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	f.writes = append(f.writes, string(p)+fmt.Sprintf("<barrier %d/>", f.seq))
	f.barriers = append(f.barriers, len(f.writes)-1)
	return f.seq, nil
}

func (f *fakeStream) Confirmed() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.confirmed
}

func (f *fakeStream) confirm(seq uint64) {
	f.mu.Lock()
	f.confirmed = max(f.confirmed, seq)
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

func (f *fakeStream) sent() (writes []string, seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...), f.seq
}

func (f *fakeStream) Notify() <-chan struct{} { return f.notify }
func (f *fakeStream) Done() <-chan struct{}   { return f.done }
func (f *fakeStream) Err() error {
	if f.err != nil {
		return f.err
	}
	return errors.New("fake stream closed")
}

type ack struct {
	tag      uint64
	multiple bool
}

type fakeConsumer struct {
	d         chan amqp.Delivery
	mu        sync.Mutex
	acks      []ack
	cancelled bool
	done      chan struct{}
}

func newFakeConsumer() *fakeConsumer {
	return &fakeConsumer{d: make(chan amqp.Delivery, 1000), done: make(chan struct{})}
}

func (c *fakeConsumer) Deliveries() <-chan amqp.Delivery { return c.d }
func (c *fakeConsumer) Ack(tag uint64, multiple bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = append(c.acks, ack{tag, multiple})
	return nil
}
func (c *fakeConsumer) Cancel() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cancelled {
		c.cancelled = true
		close(c.d)
	}
	return nil
}
func (c *fakeConsumer) Done() <-chan struct{} { return c.done }
func (c *fakeConsumer) Err() error            { return errors.New("fake consumer closed") }
func (c *fakeConsumer) acked() []ack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ack(nil), c.acks...)
}

// fakeConfirm is a confirm the test resolves.
type fakeConfirm struct {
	mu       sync.Mutex
	resolved bool
	err      error
	notify   chan<- struct{}
}

func (c *fakeConfirm) resolve(err error) {
	c.mu.Lock()
	c.resolved, c.err = true, err
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *fakeConfirm) Resolved() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resolved
}

func (c *fakeConfirm) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

type sentDeadLetter struct {
	q, reason string
	tag       uint64
	c         *fakeConfirm
}

// fakeDL records dead letters; the test resolves their confirms. While
// blocked it refuses publishes as a blocked broker would (after the
// publish timeout).
type fakeDL struct {
	mu      sync.Mutex
	dls     []sentDeadLetter
	blocked bool
	done    chan struct{}
}

func (f *fakeDL) DeadLetter(ctx context.Context, q string, d *amqp.Delivery, reason string, notify chan<- struct{}) (confirmation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked {
		return nil, errors.New("fake: blocked")
	}
	c := &fakeConfirm{notify: notify}
	f.dls = append(f.dls, sentDeadLetter{q, reason, d.DeliveryTag, c})
	return c, nil
}
func (f *fakeDL) Blocked() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked
}
func (f *fakeDL) setBlocked(b bool) {
	f.mu.Lock()
	f.blocked = b
	f.mu.Unlock()
}
func (f *fakeDL) Done() <-chan struct{} { return f.done }
func (f *fakeDL) Err() error            { return nil }
func (f *fakeDL) list() []sentDeadLetter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentDeadLetter(nil), f.dls...)
}

// pumpHarness runs outbound.pump against fakes.
type pumpHarness struct {
	t      *testing.T
	g      *Gateway
	s      *fakeStream
	c      *fakeConsumer
	dl     *fakeDL
	cancel context.CancelFunc
	errc   chan error
	tag    uint64
}

func startPump(t *testing.T, prefetch int) *pumpHarness {
	t.Helper()
	return startPumpWith(t, prefetch, barrierDelay)
}

// startPumpWith starts a pump whose barriers wait delay for company.
func startPumpWith(t *testing.T, prefetch int, delay time.Duration) *pumpHarness {
	t.Helper()
	g := testGateway(t, quietConfig(t)+fmt.Sprintf("amqp:\n  prefetch: %d\n", prefetch), Deps{})
	g.out.barrierDelay = delay
	return startPumpOn(t, g)
}

// startPumpOn starts the pump of g.
func startPumpOn(t *testing.T, g *Gateway) *pumpHarness {
	t.Helper()
	cfg := g.Config()
	h := &pumpHarness{t: t, g: g, s: newFakeStream(), c: newFakeConsumer(), dl: &fakeDL{done: make(chan struct{})}, errc: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- g.out.pump(ctx, cfg, cfg.XMPP.Domain, h.s, h.dl, h.c) }()
	t.Cleanup(func() {
		cancel()
		h.s.kill()
		<-h.errc
	})
	return h
}

func (h *pumpHarness) deliver(body string) uint64 {
	h.tag++
	h.c.d <- amqp.Delivery{DeliveryTag: h.tag, Body: []byte(body), MessageId: fmt.Sprint("m", h.tag)}
	return h.tag
}

func item(n int) string {
	return fmt.Sprintf(`{"target":"alice@example.org","text":"item %d"}`, n)
}

func TestPumpAcksOnlyAfterBarrier(t *testing.T) {
	h := startPump(t, 1000)
	h.deliver(item(1))
	testkit.Eventually(t, "first barrier", func() bool { _, seq := h.s.sent(); return seq == 1 })
	if got := h.c.acked(); len(got) != 0 {
		t.Fatalf("acked before the barrier was answered: %v", got)
	}
	// More items while the barrier is in flight ride without a new barrier.
	for i := 2; i <= 5; i++ {
		h.deliver(item(i))
	}
	testkit.Eventually(t, "items written", func() bool {
		w, _ := h.s.sent()
		return strings.Count(strings.Join(w, ""), "<message") == 5
	})
	if _, seq := h.s.sent(); seq != 1 {
		t.Fatalf("barriers = %d while one was in flight, want 1", seq)
	}
	h.s.confirm(1)
	testkit.Eventually(t, "ack of the first item and a barrier for the rest", func() bool {
		_, seq := h.s.sent()
		return len(h.c.acked()) == 1 && seq == 2
	})
	if got := h.c.acked()[0]; got != (ack{1, true}) {
		t.Fatalf("ack = %+v, want tag 1 multiple", got)
	}
	h.s.confirm(2)
	testkit.Eventually(t, "ack of all", func() bool { a := h.c.acked(); return len(a) == 2 && a[1] == (ack{5, true}) })
	if v := testutil.ToFloat64(h.g.metrics.OutboundItems.WithLabelValues(metrics.ResultSent)); v != 5 {
		t.Fatalf("sent = %v, want 5", v)
	}
	// Items are written in queue order.
	w, _ := h.s.sent()
	all := strings.Join(w, "")
	last := -1
	for i := 1; i <= 5; i++ {
		at := strings.Index(all, fmt.Sprintf("item %d<", i))
		if at < last {
			t.Fatalf("item %d out of order in %q", i, all)
		}
		last = at
	}
}

// TestPumpBarrierWaitsForCompany: items are written at once, but a
// barrier (a stanza the server must route) goes out only once enough items
// rode without one, or once the first of them waited barrierDelay.
func TestPumpBarrierWaitsForCompany(t *testing.T) {
	h := startPumpWith(t, 40, time.Hour) // a barrier every prefetch/4 = 10 items
	for i := 1; i <= 9; i++ {
		h.deliver(item(i))
	}
	testkit.Eventually(t, "9 items written", func() bool {
		w, _ := h.s.sent()
		return strings.Count(strings.Join(w, ""), "<message") == 9
	})
	if _, seq := h.s.sent(); seq != 0 {
		t.Fatalf("%d barriers for 9 items, want none before the 10th or the delay", seq)
	}
	h.deliver(item(10))
	testkit.Eventually(t, "a barrier with the 10th item", func() bool { _, seq := h.s.sent(); return seq == 1 })
	h.s.confirm(1)
	testkit.Eventually(t, "all 10 acked", func() bool { a := h.c.acked(); return len(a) == 1 && a[0] == (ack{10, true}) })

	// A lone item gets its barrier from the delay alone.
	h2 := startPumpWith(t, 40, 20*time.Millisecond)
	h2.deliver(item(1))
	testkit.Eventually(t, "the lone item's barrier", func() bool { _, seq := h2.s.sent(); return seq == 1 })
	h2.s.confirm(1)
	testkit.Eventually(t, "the lone item acked", func() bool { return len(h2.c.acked()) == 1 })
}

func TestPumpOutOfOrderBarrierAnswers(t *testing.T) {
	h := startPump(t, 4) // a barrier every prefetch/4 = 1 item
	for i := 1; i <= 3; i++ {
		h.deliver(item(i))
		testkit.Eventually(t, "barrier", func() bool { _, seq := h.s.sent(); return seq == uint64(i) })
	}
	h.s.confirm(3) // answering 3 proves 1 and 2 too
	testkit.Eventually(t, "one ack for all three", func() bool { a := h.c.acked(); return len(a) == 1 && a[0] == (ack{3, true}) })
}

func TestPumpDeadLettersAfterConfirm(t *testing.T) {
	h := startPump(t, 1000)
	h.deliver(item(1))
	h.deliver(`{"target":"alice@example.org"`) // not JSON
	h.deliver(item(3))
	testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
	dl := h.dl.list()[0]
	if dl.tag != 2 || dl.q != "xmpp-out.dead" || !strings.HasPrefix(dl.reason, string(stanza.ReasonInvalidJSON)) {
		t.Fatalf("dead letter = %+v", dl)
	}
	testkit.Eventually(t, "writes", func() bool {
		w, _ := h.s.sent()
		return strings.Count(strings.Join(w, ""), "<message") == 2
	})
	// Answer every barrier for a while, however the items were batched.
	answerAll := func() { _, seq := h.s.sent(); h.s.confirm(seq) }
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		answerAll()
	}
	// Every barrier is answered, but the broker has not confirmed the dead
	// letter: nothing from it on may be acked.
	for _, a := range h.c.acked() {
		if a.tag >= 2 {
			t.Fatalf("acked %+v before the dead letter was confirmed", a)
		}
	}
	dl.c.resolve(nil)
	testkit.Eventually(t, "ack after the dead letter's confirm", func() bool {
		answerAll()
		a := h.c.acked()
		return len(a) > 0 && a[len(a)-1] == (ack{3, true})
	})
	if v := testutil.ToFloat64(h.g.metrics.OutboundItems.WithLabelValues(metrics.ResultDeadLettered)); v != 1 {
		t.Fatalf("dead_lettered = %v", v)
	}
	if v := testutil.ToFloat64(h.g.metrics.DeadLetters.WithLabelValues(string(stanza.ReasonInvalidJSON))); v != 1 {
		t.Fatalf("dead letters by reason = %v", v)
	}
}

func TestPumpDrainsOnStop(t *testing.T) {
	h := startPump(t, 1000)
	for i := 1; i <= 3; i++ {
		h.deliver(item(i))
	}
	testkit.Eventually(t, "written", func() bool {
		w, _ := h.s.sent()
		return strings.Count(strings.Join(w, ""), "<message") == 3
	})
	h.cancel()
	testkit.Eventually(t, "consumer cancelled", func() bool { h.c.mu.Lock(); defer h.c.mu.Unlock(); return h.c.cancelled })
	select {
	case err := <-h.errc:
		t.Fatalf("pump returned %v before the last barrier was answered", err)
	case <-time.After(50 * time.Millisecond):
	}
	deadline := time.After(5 * time.Second)
	for returned := false; !returned; {
		_, seq := h.s.sent()
		h.s.confirm(seq)
		select {
		case err := <-h.errc:
			h.errc <- err
			if err != nil {
				t.Fatalf("drain: %v", err)
			}
			returned = true
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatal("pump did not return after the last barrier")
		}
	}
	if a := h.c.acked(); len(a) == 0 || a[len(a)-1] != (ack{3, true}) {
		t.Fatalf("acks after drain = %v", a)
	}
}

func TestPumpStopsWithoutAckWhenStreamDies(t *testing.T) {
	h := startPump(t, 1000)
	h.deliver(item(1))
	testkit.Eventually(t, "barrier", func() bool { _, seq := h.s.sent(); return seq == 1 })
	h.s.kill()
	select {
	case err := <-h.errc:
		h.errc <- err
		if err == nil {
			t.Fatal("pump returned nil after the stream died")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pump did not notice the dead stream")
	}
	if a := h.c.acked(); len(a) != 0 {
		t.Fatalf("acked %v without confirmation", a)
	}
}

func TestPumpRateLimitKeepsOrder(t *testing.T) {
	h := startPump(t, 1000)
	next := *h.g.Config()
	next.Outbound.Rate = 100 // burst 5
	h.g.Reload(&next)
	start := time.Now()
	const n = 30
	for i := 1; i <= n; i++ {
		h.deliver(item(i))
	}
	written := func() int {
		w, _ := h.s.sent()
		return strings.Count(strings.Join(w, ""), "<message")
	}
	// Answer barriers as they come so that nothing waits on acks.
	go func() {
		for written() < n {
			_, seq := h.s.sent()
			h.s.confirm(seq)
			time.Sleep(time.Millisecond)
		}
	}()
	testkit.Eventually(t, "all written", func() bool { return written() == n })
	if d := time.Since(start); d < 220*time.Millisecond {
		t.Fatalf("%d items at 100/s (burst 5) took %s, want ≥ 250 ms", n, d)
	}
	w, _ := h.s.sent()
	all := strings.Join(w, "")
	last := -1
	for i := 1; i <= n; i++ {
		at := strings.Index(all, fmt.Sprintf("item %d<", i))
		if at < last {
			t.Fatalf("item %d out of order", i)
		}
		last = at
	}

	// Back to unlimited, live.
	next.Outbound.Rate = 0
	h.g.Reload(&next)
	if l := h.g.out.limiter.Limit(); l != rate.Inf {
		t.Fatalf("limit after reload to 0 = %v, want unlimited", l)
	}
	for i := n + 1; i <= n+200; i++ {
		h.deliver(item(i))
	}
	testkit.Eventually(t, "unlimited burst written", func() bool { return written() == n+200 })
}

func TestPumpReloadAppliesEncoderSettings(t *testing.T) {
	h := startPump(t, 4)
	h.deliver(`{"target":"alice@example.org","text":"before"}`)
	testkit.Eventually(t, "first", func() bool { _, seq := h.s.sent(); return seq == 1 })
	next := *h.g.Config()
	next.Outbound.DefaultType = "headline"
	next.Outbound.MaxTextBytes = 5
	h.g.Reload(&next)
	h.deliver(`{"target":"alice@example.org","text":"after"}`)
	h.deliver(`{"target":"alice@example.org","text":"too long now"}`)
	testkit.Eventually(t, "second written and third dead-lettered", func() bool {
		w, _ := h.s.sent()
		return strings.Contains(strings.Join(w, ""), "after") && len(h.dl.list()) == 1
	})
	w, _ := h.s.sent()
	for _, st := range strings.Split(strings.Join(w, ""), "<message")[1:] {
		want := "type='chat'"
		if strings.Contains(st, "after") {
			want = "type='headline'"
		}
		if !strings.Contains(st, want) {
			t.Fatalf("want %s in <message%s", want, st)
		}
	}
	if r := h.dl.list()[0].reason; !strings.HasPrefix(r, "text_too_long") {
		t.Fatalf("reason %q", r)
	}
}

// TestStopBeforeAndDuringRun: Stop works from any goroutine, even before Run.
func TestStopBeforeAndDuringRun(t *testing.T) {
	// Nothing listens on port 1: the links retry until Stop.
	unreachable := func() string {
		return "xmpp:\n  domain: gw.example.org\n  secret: s\n  server: 127.0.0.1:1\namqp:\n  url: amqp://guest:guest@127.0.0.1:1/\n" +
			"http:\n  listen: \"\"\npresence:\n  store: " + t.TempDir() + "/p.db\n"
	}
	g := testGateway(t, unreachable(), Deps{})
	g.Stop()
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after an early Stop")
	}

	g2 := testGateway(t, unreachable(), Deps{})
	go func() { done <- g2.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	go g2.Stop()
	go g2.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
}

// answerBarriers confirms every barrier written so far, until stop is
// closed.
func (h *pumpHarness) answerBarriers(stop <-chan struct{}) {
	go func() {
		for {
			_, seq := h.s.sent()
			h.s.confirm(seq)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
}

func (h *pumpHarness) messages() int {
	w, _ := h.s.sent()
	return strings.Count(strings.Join(w, ""), "<message")
}

func (h *pumpHarness) lastAck() uint64 {
	a := h.c.acked()
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1].tag
}

// A dead letter the broker refuses is published again after a backoff; the
// items around it are not written again, and are acked once it is
// confirmed.
func TestPumpDeadLetterRefusedIsRetriedWithoutResending(t *testing.T) {
	h := startPump(t, 1000)
	stop := make(chan struct{})
	defer close(stop)
	h.answerBarriers(stop)
	h.deliver(item(1))
	h.deliver(`not json`)
	h.deliver(item(3))
	testkit.Eventually(t, "dead letter published", func() bool { return len(h.dl.list()) == 1 })
	testkit.Eventually(t, "item 1 acked", func() bool { return h.lastAck() == 1 })
	start := time.Now()
	h.dl.list()[0].c.resolve(errors.New("nacked"))
	testkit.Eventually(t, "dead letter published again", func() bool { return len(h.dl.list()) == 2 })
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("retried after %v: want a backoff", d)
	}
	if h.lastAck() != 1 {
		t.Fatalf("acked past a refused dead letter: %v", h.c.acked())
	}
	h.dl.list()[1].c.resolve(nil)
	testkit.Eventually(t, "all acked", func() bool { return h.lastAck() == 3 })
	if n := h.messages(); n != 2 {
		t.Fatalf("%d messages written, want 2 (nothing re-sent)", n)
	}
	select {
	case err := <-h.errc:
		t.Fatalf("pump ended: %v", err)
	default:
	}
}

// While the broker blocks publishers a dead letter waits (it does not hold
// the pipe), good items still go out, and a stop is not held up past the
// drain bound.
func TestPumpDeadLetterWhileBrokerBlocked(t *testing.T) {
	h := startPump(t, 1000)
	h.g.out.drain = 300 * time.Millisecond
	stop := make(chan struct{})
	defer close(stop)
	h.answerBarriers(stop)
	h.dl.setBlocked(true)
	h.deliver(item(1))
	h.deliver(`not json`)
	h.deliver(item(3))
	testkit.Eventually(t, "items written", func() bool { return h.messages() == 2 })
	testkit.Eventually(t, "item 1 acked", func() bool { return h.lastAck() == 1 })
	if n := len(h.dl.list()); n != 0 {
		t.Fatalf("%d dead letters published while blocked", n)
	}
	h.dl.setBlocked(false)
	testkit.Eventually(t, "dead letter published after the block", func() bool { return len(h.dl.list()) == 1 })
	h.dl.setBlocked(true)
	h.dl.list()[0].c.resolve(errors.New("nacked"))
	// Stop while the dead letter cannot be published: bounded.
	start := time.Now()
	h.cancel()
	select {
	case err := <-h.errc:
		h.errc <- err
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stop held up by a blocked broker")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stop took %v", d)
	}
	if h.lastAck() != 1 {
		t.Fatalf("acked past an unconfirmed dead letter: %v", h.c.acked())
	}
}

// Redelivered items go out one at a time, each behind its own barrier, so
// that a stream dying on one of them blames it alone.
func TestPumpRedeliveredItemsGoAlone(t *testing.T) {
	h := startPump(t, 1000)
	for i := 1; i <= 3; i++ {
		h.tag++
		h.c.d <- amqp.Delivery{DeliveryTag: h.tag, Body: []byte(item(i)), MessageId: fmt.Sprint("m", i), Redelivered: true}
	}
	h.deliver(item(4))
	for i := 1; i <= 3; i++ {
		testkit.Eventually(t, "one item and its barrier", func() bool { _, seq := h.s.sent(); return seq == uint64(i) })
		if n := h.messages(); n != i {
			t.Fatalf("%d messages out with barrier %d unanswered, want %d", n, i, i)
		}
		h.s.confirm(uint64(i))
		testkit.Eventually(t, "ack", func() bool { return h.lastAck() == uint64(i) })
	}
	testkit.Eventually(t, "the fresh item", func() bool { return h.messages() == 4 })
}

// An item delivered amqp.delivery_limit times is dead-lettered instead of
// being written; a quorum queue counts deliveries in x-delivery-count.
func TestPumpDeliveryLimit(t *testing.T) {
	h := startPump(t, 1000)
	stop := make(chan struct{})
	defer close(stop)
	h.answerBarriers(stop)
	// Quorum queue: the broker counts.
	h.tag++
	h.c.d <- amqp.Delivery{DeliveryTag: h.tag, Body: []byte(item(1)), Redelivered: true,
		Headers: amqp.Table{"x-delivery-count": int64(19)}}
	testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
	if r := h.dl.list()[0].reason; !strings.HasPrefix(r, "delivery_limit: delivered 20 times") {
		t.Fatalf("reason %q", r)
	}
	if h.messages() != 0 {
		t.Fatal("an item over the delivery limit was written")
	}
	h.dl.list()[0].c.resolve(nil)
	testkit.Eventually(t, "acked", func() bool { return h.lastAck() == 1 })
	if v := testutil.ToFloat64(h.g.metrics.DeadLetters.WithLabelValues("delivery_limit")); v != 1 {
		t.Fatalf("dead letters delivery_limit = %v", v)
	}

}

// On a classic queue the gateway counts the deliveries of an item itself,
// across sessions: here the stream dies each time before its barrier is
// answered.
func TestPumpDeliveryLimitCounted(t *testing.T) {
	h := startPump(t, 1000)
	body := []byte(item(2))
	for n := 2; n <= 20; n++ {
		h.tag++
		h.c.d <- amqp.Delivery{DeliveryTag: h.tag, Body: body, MessageId: "same", Redelivered: true}
		if n == 20 {
			break
		}
		testkit.Eventually(t, "written", func() bool { return h.messages() == 1 })
		h = h.streamDies(errors.New("connection reset"))
	}
	testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
	if r := h.dl.list()[0].reason; !strings.HasPrefix(r, "delivery_limit: delivered 20 times") {
		t.Fatalf("reason %q", r)
	}
}

// An item the server blames (a stream error about our input while it alone
// was in flight) twice is set aside long before the delivery limit; an
// error that does not blame the input (a shutdown) does not count.
func TestPumpBlamedItemIsSetAside(t *testing.T) {
	h := startPump(t, 1000)
	body := []byte(item(1))
	redeliver := func() {
		h.tag++
		h.c.d <- amqp.Delivery{DeliveryTag: h.tag, Body: body, MessageId: "poison", Redelivered: true}
	}
	for _, cond := range []string{"system-shutdown", "not-well-formed", "policy-violation"} {
		redeliver()
		testkit.Eventually(t, "written", func() bool { return h.messages() == 1 })
		h = h.streamDies(xstream.Error{Err: cond})
	}
	redeliver()
	testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
	if r := h.dl.list()[0].reason; !strings.HasPrefix(r, "delivery_limit: the XMPP server ended the stream 2 times") {
		t.Fatalf("reason %q", r)
	}
	if h.messages() != 0 {
		t.Fatal("a blamed item was written again")
	}
}

// streamDies ends the pump's stream with err (as component.Session.Err
// would report it), lets the outbound forget the session as its run loop
// does, and starts a new pump with new fakes on the same gateway.
func (h *pumpHarness) streamDies(err error) *pumpHarness {
	h.t.Helper()
	h.s.err = err
	h.s.kill()
	if perr := <-h.errc; perr == nil {
		h.t.Fatal("pump returned nil after the stream died")
	}
	o := h.g.out
	o.blame(component.StreamErrorCondition(h.s.Err()))
	o.reset()
	n := &pumpHarness{t: h.t, g: h.g, s: newFakeStream(), c: newFakeConsumer(), dl: &fakeDL{done: make(chan struct{})}, errc: make(chan error, 1), tag: h.tag}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	cfg := h.g.Config()
	go func() { n.errc <- o.pump(ctx, cfg, cfg.XMPP.Domain, n.s, n.dl, n.c) }()
	h.t.Cleanup(func() {
		cancel()
		n.s.kill()
		<-n.errc
	})
	h.errc <- nil // for h's own cleanup
	return n
}
