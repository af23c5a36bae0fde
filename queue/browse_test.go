package queue

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func dialBrowser(t *testing.T, q string) *Browser {
	t.Helper()
	b, err := DialBrowser(testCtx(t), testURL(), q, "xmppgw test browser")
	if err != nil {
		t.Fatalf("DialBrowser(%s): %v", q, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// drainBodies takes every ready message of q (auto-ack) and returns the
// bodies in queue order.
func (a *admin) drainBodies(t *testing.T, q string) []string {
	t.Helper()
	ch := a.channel(t)
	defer ch.Close()
	var bodies []string
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("get %s: %v", q, err)
		}
		if !ok {
			return bodies
		}
		bodies = append(bodies, string(d.Body))
	}
}

func wantBodies(t *testing.T, what string, got []string, idx ...int) {
	t.Helper()
	var want []string
	for _, i := range idx {
		want = append(want, "msg-"+itoa(i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func seq(from, to int, keep func(int) bool) []int {
	var s []int
	for i := from; i < to; i++ {
		if keep == nil || keep(i) {
			s = append(s, i)
		}
	}
	return s
}

// TestBrowserLeavesQueueAsItWas: browsing takes every message, sees them in
// order, and Close puts every one back: a classic queue in the same order, a
// quorum queue in an order of its own (RabbitMQ 3.10 puts the returned
// messages back at the head, not in their order).
func TestBrowserLeavesQueueAsItWas(t *testing.T) {
	for i, qt := range []string{Classic, Quorum} {
		t.Run(qt, func(t *testing.T) {
			a := newAdmin(t)
			q := uniqueName(t, "test-browse-")
			a.declare(t, q, Topology{QueueType: qt}.Args(q))
			a.publishN(t, q, 40)

			b := dialBrowser(t, q)
			if n, err := b.Depth(); err != nil || n != 40 {
				t.Fatalf("%d: Depth = %d, %v; want 40", i, n, err)
			}
			var seen []string
			for {
				d, left, ok, err := b.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if left != 40-len(seen)-1 {
					t.Errorf("message %d: %d left, want %d", len(seen), left, 40-len(seen)-1)
				}
				seen = append(seen, string(d.Body))
			}
			wantBodies(t, "browsed", seen, seq(0, 40, nil)...)
			if n, err := b.Depth(); err != nil || n != 0 {
				t.Fatalf("Depth while browsing = %d, %v; want 0 (all held)", n, err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			after := a.drainBodies(t, q)
			if qt == Quorum {
				slices.SortFunc(after, func(x, y string) int { return cmp.Compare(len(x), len(y))*2 + cmp.Compare(x, y) })
				t.Logf("quorum queue: the order after Close is the broker's")
			}
			wantBodies(t, "after Close", after, seq(0, 40, nil)...)
		})
	}
}

func TestBrowserMissingQueue(t *testing.T) {
	b := dialBrowser(t, "test-browse-missing-"+itoa(int(time.Now().UnixNano()%1e9)))
	_, _, ok, err := b.Next()
	if ok || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Next on a missing queue: ok %v, err %v; want ErrNotFound", ok, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after the channel died: %v", err)
	}
}

// TestMoveSelection moves every third message; the others stay where they
// were, in order, and the copies arrive in order without the dropped
// headers.
func TestMoveSelection(t *testing.T) {
	a := newAdmin(t)
	src := uniqueName(t, "test-move-src-")
	dst := uniqueName(t, "test-move-dst-")
	a.declare(t, src, nil)
	a.declare(t, dst, nil)
	for i := range 60 {
		dc, err := a.ch.PublishWithDeferredConfirm("", src, true, false, amqp.Publishing{
			Headers:      amqp.Table{"x-drop": "yes", "x-keep": int32(i)},
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    "id-" + itoa(i),
			Body:         []byte("msg-" + itoa(i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatal("nacked")
		}
	}
	p := dialPublisher(t)
	b := dialBrowser(t, src)
	third := func(i int) bool { return i%3 == 0 }
	st, err := Move(testCtx(t), b, p, dst, MoveOptions{
		Select: func(d *amqp.Delivery) bool {
			n, _ := d.Headers["x-keep"].(int32)
			return third(int(n))
		},
		Copy: func(d *amqp.Delivery) amqp.Publishing {
			return Republish(d, func(h string) bool { return h == "x-drop" })
		},
		Window: 4, // smaller than the selection: the window is exercised
	})
	if err != nil {
		t.Fatal(err)
	}
	if st != (MoveStats{Examined: 60, Selected: 20, Moved: 20}) {
		t.Fatalf("stats = %+v", st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantBodies(t, "left in the source", a.drainBodies(t, src), seq(0, 60, func(i int) bool { return !third(i) })...)

	ch := a.channel(t)
	defer ch.Close()
	for _, i := range seq(0, 60, third) {
		d, ok, err := ch.Get(dst, true)
		if err != nil || !ok {
			t.Fatalf("copy of %d missing: %v", i, err)
		}
		if string(d.Body) != "msg-"+itoa(i) || d.MessageId != "id-"+itoa(i) || d.ContentType != "application/json" ||
			d.DeliveryMode != amqp.Persistent || d.Headers["x-keep"] != int32(i) {
			t.Fatalf("copy of %d: body %q id %q type %q mode %d headers %v", i, d.Body, d.MessageId, d.ContentType, d.DeliveryMode, d.Headers)
		}
		if _, ok := d.Headers["x-drop"]; ok {
			t.Fatalf("copy of %d keeps the dropped header: %v", i, d.Headers)
		}
	}
}

// TestMoveToMissingQueueKeepsEverything: the broker returns the first copy
// (no such queue); Move stops and nothing leaves the source.
func TestMoveToMissingQueueKeepsEverything(t *testing.T) {
	a := newAdmin(t)
	src := uniqueName(t, "test-move-src-")
	a.declare(t, src, nil)
	a.publishN(t, src, 10)
	p := dialPublisher(t)
	b := dialBrowser(t, src)
	st, err := Move(testCtx(t), b, p, src+"-missing", MoveOptions{})
	if !errors.Is(err, ErrReturned) {
		t.Fatalf("Move to a missing queue: %v, want ErrReturned", err)
	}
	if st.Moved != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wantBodies(t, "source", a.drainBodies(t, src), seq(0, 10, nil)...)
}

// TestMoveMax examines only the head of the queue.
func TestMoveMax(t *testing.T) {
	a := newAdmin(t)
	src := uniqueName(t, "test-move-src-")
	dst := uniqueName(t, "test-move-dst-")
	a.declare(t, src, nil)
	a.declare(t, dst, nil)
	a.publishN(t, src, 10)
	p := dialPublisher(t)
	b := dialBrowser(t, src)
	st, err := Move(testCtx(t), b, p, dst, MoveOptions{Max: 4})
	if err != nil || st != (MoveStats{Examined: 4, Selected: 4, Moved: 4, Left: 6}) {
		t.Fatalf("Move: %+v, %v", st, err)
	}
	b.Close()
	wantBodies(t, "source", a.drainBodies(t, src), seq(4, 10, nil)...)
	wantBodies(t, "destination", a.drainBodies(t, dst), seq(0, 4, nil)...)
}

// TestMoveCancelled: a cancelled context stops Move before it takes
// anything; nothing moves.
func TestMoveCancelled(t *testing.T) {
	a := newAdmin(t)
	src := uniqueName(t, "test-move-src-")
	dst := uniqueName(t, "test-move-dst-")
	a.declare(t, src, nil)
	a.declare(t, dst, nil)
	a.publishN(t, src, 5)
	p := dialPublisher(t)
	b := dialBrowser(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, err := Move(ctx, b, p, dst, MoveOptions{})
	if !errors.Is(err, context.Canceled) || st.Moved != 0 {
		t.Fatalf("Move: %+v, %v", st, err)
	}
	b.Close()
	wantBodies(t, "source", a.drainBodies(t, src), seq(0, 5, nil)...)
}

func TestRepublishCopies(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	d := &amqp.Delivery{
		Headers: amqp.Table{"a": "1", "b": "2"}, ContentType: "ct", ContentEncoding: "ce", DeliveryMode: 2, Priority: 3,
		CorrelationId: "corr", ReplyTo: "rt", Expiration: "60000", MessageId: "mid", Timestamp: ts, Type: "ty",
		UserId: "guest", AppId: "app", Body: []byte("body"),
	}
	p := Republish(d, func(h string) bool { return h == "a" })
	if p.ContentType != "ct" || p.ContentEncoding != "ce" || p.DeliveryMode != 2 || p.Priority != 3 || p.CorrelationId != "corr" ||
		p.ReplyTo != "rt" || p.Expiration != "60000" || p.MessageId != "mid" || !p.Timestamp.Equal(ts) || p.Type != "ty" ||
		p.UserId != "guest" || p.AppId != "app" || string(p.Body) != "body" || len(p.Headers) != 1 || p.Headers["b"] != "2" {
		t.Fatalf("Republish = %+v", p)
	}
	if len(d.Headers) != 2 {
		t.Fatalf("the delivery's headers were modified: %v", d.Headers)
	}
	if p := Republish(d, func(string) bool { return true }); p.Headers != nil {
		t.Fatalf("all headers dropped: %v, want nil", p.Headers)
	}
}
