package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/queue"
	"xmppgw/stanza"
)

func TestReceiptBook(t *testing.T) {
	b := newReceiptBook(3)
	b.add("m1", "alice@example.org")
	b.add("m2", "room@conference.example.org")
	for i, tc := range []struct {
		id, from string
		want     bool
	}{
		0: {"m1", "alice@example.org/phone", true},
		1: {"m1", "alice@example.org", true},
		2: {"m1", "Alice@Example.ORG/Phone", true}, // case-folded
		3: {"m1", "mallory@example.org/x", false},  // a stranger
		4: {"m1", "alice@example.org.evil/x", false},
		5: {"m3", "alice@example.org/phone", false},        // never sent
		6: {"m2", "room@conference.example.org/bob", true}, // an occupant's marker
		7: {"M1", "alice@example.org", false},              // ids are exact
	} {
		if got := b.match(tc.id, tc.from); got != tc.want {
			t.Errorf("%d: match(%q, %q) = %v", i, tc.id, tc.from, got)
		}
	}
	// A redelivery (same id) takes no second place: m1 is still the oldest.
	b.add("m1", "alice@example.org")
	b.add("m3", "carol@example.org")
	if !b.match("m1", "alice@example.org") || len(b.ring) != 3 {
		t.Fatalf("redelivery took a place: ring %d", len(b.ring))
	}
	// Full: the oldest is forgotten first.
	b.add("m4", "dave@example.org")
	if b.match("m1", "alice@example.org") || !b.match("m2", "room@conference.example.org") || !b.match("m4", "dave@example.org") {
		t.Fatal("eviction is not oldest first")
	}
	if len(b.m) != 3 || len(b.ring) != 3 {
		t.Fatalf("book holds %d entries, ring %d, bound 3", len(b.m), len(b.ring))
	}
}

// TestReceiptBookBounded: the memory held does not depend on the lengths
// of ids and JIDs, and stays at the bound under any number of items.
func TestReceiptBookBounded(t *testing.T) {
	b := newReceiptBook(1000)
	long := string(make([]byte, 4096))
	for i := range 10_000 {
		b.add(fmt.Sprint(i, long), long)
	}
	if len(b.m) != 1000 || len(b.ring) != 1000 {
		t.Fatalf("book holds %d entries, ring %d, bound 1000", len(b.m), len(b.ring))
	}
}

// TestReceiptEvents: a receipt becomes an event only for a message sent
// with receipt: true, from its recipient; others are counted and dropped.
func TestReceiptEvents(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &fakeEvents{auto: true}
	usePublisher(g, func() eventPublisher { return pub })
	g.receipts.add("ours", "alice@example.org")
	r := reader{g}
	for _, ev := range []stanza.Event{
		{Kind: "receipt", ID: "ours", From: "alice@example.org/phone", Status: "received"},
		{Kind: "receipt", ID: "ours", From: "alice@example.org/laptop", Status: "displayed"},
		{Kind: "receipt", ID: "ours", From: "mallory@example.org/x", Status: "displayed"},
		{Kind: "receipt", ID: "never-sent", From: "alice@example.org/phone", Status: "received"},
	} {
		r.Message(nil, &ev)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // drain what is buffered and return
	if err := g.in.run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pub.count(); n != 2 {
		t.Fatalf("%d receipt events published, want 2", n)
	}
	for i, want := range []string{"received", "displayed"} {
		if got := testutil.ToFloat64(g.metrics.Receipts.WithLabelValues(want)); got != 1 {
			t.Errorf("receipts{status=%s} = %v", want, got)
		}
		if body := string(pub.published[i].Body); pub.published[i].Type != "receipt" || !strings.Contains(body, `"status":"`+want+`"`) {
			t.Errorf("event %d: type %q body %s", i, pub.published[i].Type, body)
		}
	}
	if got := testutil.ToFloat64(g.metrics.ReceiptsUnsolicited); got != 2 {
		t.Errorf("unsolicited = %v, want 2", got)
	}
	if got := testutil.ToFloat64(g.metrics.InboundEvents.WithLabelValues("receipt", routeDefault)); got != 2 {
		t.Errorf("receipt events confirmed = %v", got)
	}
}

// TestInboundReceiptOnlyAfterConfirm: a message asking for a receipt is
// answered only once its event is confirmed: a nacked event gets its
// refusal, never a receipt. (The bytes on a real stream are checked by the
// integration tests; here no session exists, so nothing may be counted as
// sent either.)
func TestInboundReceiptOnlyAfterConfirm(t *testing.T) {
	g := newTestGateway(t, "")
	pub := &fakeEvents{}
	usePublisher(g, func() eventPublisher { return pub })
	g.in.offer(nil, &stanza.Event{Kind: "message", ID: "a", From: "alice@example.org/p", Text: "x", WantsReceipt: true})
	g.in.offer(nil, &stanza.Event{Kind: "message", ID: "b", From: "alice@example.org/p", Text: "y", WantsReceipt: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.in.run(ctx) }()
	testkit.Eventually(t, "both published", func() bool { return pub.count() == 2 })
	pub.mu.Lock()
	pub.confirms[0].resolve(nil)
	pub.confirms[1].resolve(queue.ErrNacked)
	pub.mu.Unlock()
	testkit.Eventually(t, "both settled", func() bool {
		return testutil.ToFloat64(g.metrics.InboundEvents.WithLabelValues("message", routeDefault)) == 1 &&
			testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("nacked")) == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(g.metrics.ReceiptsSent); got != 0 {
		t.Fatalf("receipts sent without a session: %v", got)
	}
}

// blockedEvents is an eventPublisher for a broker that blocks publishers
// until unblock: a publish waits as queue.Publisher's does.
type blockedEvents struct {
	fakeEvents
	unblocked chan struct{}
	waits     atomic.Int32 // publishes that had to wait for the block
}

func (b *blockedEvents) Blocked() bool {
	select {
	case <-b.unblocked:
		return false
	default:
		return true
	}
}

func (b *blockedEvents) PublishNotify(ctx context.Context, key string, msg amqp.Publishing, mandatory bool, notify chan<- struct{}) (confirmation, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.Blocked() {
		b.waits.Add(1)
		select {
		case <-b.unblocked:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", queue.ErrBlocked, ctx.Err())
		}
	}
	return b.fakeEvents.PublishNotify(ctx, key, msg, mandatory, notify)
}

// TestInboundBlockedWaitFromArrival: while the broker blocks publishers,
// inbound.blocked_wait counts from each message's arrival: the events
// buffered behind the block are refused together once it passes, not one
// wait after another (50 events × the wait).
func TestInboundBlockedWaitFromArrival(t *testing.T) {
	g := newTestGateway(t, "inbound:\n  blocked_wait: 200ms\n")
	pub := &blockedEvents{unblocked: make(chan struct{})}
	usePublisher(g, func() eventPublisher { return pub })
	at := time.Now()
	for i := range 50 {
		g.in.offer(nil, &stanza.Event{Kind: "message", ID: fmt.Sprint(i), Text: "x", ReceivedAt: at})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.in.run(ctx) }()
	testkit.Eventually(t, "every buffered event refused", func() bool {
		return testutil.ToFloat64(g.metrics.InboundRefused.WithLabelValues("blocked")) == 50
	})
	if n := pub.waits.Load(); n != 1 {
		t.Errorf("%d publishes waited for the block, want 1 (the others' wait had passed with it)", n)
	}
	// Once the block lifts, a new message goes through.
	close(pub.unblocked)
	g.in.offer(nil, &stanza.Event{Kind: "message", ID: "after", Text: "x", ReceivedAt: time.Now()})
	testkit.Eventually(t, "the message after the block published", func() bool { return pub.count() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReceiptRoomAliases: an occupant's marker quoting the id the room gave
// one of our messages (its stanza-id) is a receipt for our id; the alias is
// taken only for a message sent with receipt: true to that room, and the
// aliases are bounded.
func TestReceiptRoomAliases(t *testing.T) {
	b := newReceiptBook(16)
	b.add("ours-1", "ops@conference.example.org")
	b.alias("room-7", "ours-1", "ops@conference.example.org/notices")
	b.alias("room-8", "not-ours", "ops@conference.example.org/notices")
	b.alias("room-9", "ours-1", "other@conference.example.org/notices")
	if got, ok := b.resolve("room-7"); !ok || got != "ours-1" {
		t.Fatalf("resolve(room-7) = %q %v", got, ok)
	}
	for _, id := range []string{"room-8", "room-9"} {
		if _, ok := b.resolve(id); ok {
			t.Fatalf("alias %s taken", id)
		}
	}
	big := newReceiptBook(aliasMax + 10)
	for i := range aliasMax + 5 {
		id := fmt.Sprint("o", i)
		big.add(id, "r@c")
		big.alias(fmt.Sprint("room", i), id, "r@c/n")
	}
	if len(big.aliases) != aliasMax || len(big.aliasOrder) != aliasMax {
		t.Fatalf("%d aliases, bound %d", len(big.aliases), aliasMax)
	}
	if _, ok := big.resolve("room0"); ok {
		t.Fatal("the oldest alias kept")
	}

	// Through the gateway: the marker becomes a receipt event with our id.
	g := newTestGateway(t, "")
	pub := &fakeEvents{auto: true}
	usePublisher(g, func() eventPublisher { return pub })
	g.receipts.add("ours-1", "ops@conference.example.org")
	g.receipts.alias("room-7", "ours-1", "ops@conference.example.org/notices")
	reader{g}.Message(nil, &stanza.Event{Kind: "receipt", ID: "room-7", From: "ops@conference.example.org/alice", Status: "displayed"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.in.run(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.count() != 1 || !strings.Contains(string(pub.published[0].Body), `"id":"ours-1"`) {
		t.Fatalf("published %d: %v", pub.count(), pub.published)
	}
}
