package gateway

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway/internal/testkit"
)

// TestLedger: the record survives a reopen (a restart), belongs to one key,
// is dropped by clear of that key only, and a missing, short or unwritable
// file means no record, never an error that stops the gateway.
func TestLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db.redelivery")
	open := func() *ledger {
		t.Helper()
		l, err := openLedger(path, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.close)
		return l
	}
	l := open()
	if n := l.deliveries(42); n != 0 {
		t.Fatalf("new ledger: %d", n)
	}
	l.record(42, 3)
	l = open()
	if a, b := l.deliveries(42), l.deliveries(43); a != 3 || b != 0 {
		t.Fatalf("after reopen: key 42 %d, key 43 %d", a, b)
	}
	l.clear(43)
	if n := open().deliveries(42); n != 3 {
		t.Fatalf("clear of another key dropped the record: %d", n)
	}
	l.clear(42)
	if n := open().deliveries(42); n != 0 {
		t.Fatalf("after clear: %d", n)
	}
	if err := os.WriteFile(path, []byte{1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := open().deliveries(0x030201); n != 0 {
		t.Fatalf("short file: %d", n)
	}
	var none *ledger // no file store
	none.record(1, 2)
	none.clear(1)
	if none.deliveries(1) != 0 {
		t.Fatal("nil ledger")
	}
	if ledgerPath("postgres://x/y", true) != "" || ledgerPath("/var/lib/xmppgw/p.db", false) != "/var/lib/xmppgw/p.db.redelivery" {
		t.Fatal("ledgerPath")
	}
}

// TestRedeliveryKeyStable: the key of an item is the same in another
// process (no random seed), never 0, and changes with the body and with
// the properties it is made of.
func TestRedeliveryKeyStable(t *testing.T) {
	d := amqp.Delivery{MessageId: "m1", CorrelationId: "c", Body: []byte(`{"target":"a@b","text":"x"}`)}
	k := newRedeliveries(10).key(&d)
	if k == 0 || k != newRedeliveries(10).key(&d) {
		t.Fatalf("key %x not stable", k)
	}
	for _, e := range []amqp.Delivery{
		{MessageId: "m1", CorrelationId: "c", Body: []byte(`{"target":"a@b","text":"y"}`)},
		{MessageId: "m1c", CorrelationId: "", Body: d.Body}, // framing: not the same as m1 + c
		{MessageId: "m2", CorrelationId: "c", Body: d.Body},
	} {
		if newRedeliveries(10).key(&e) == k {
			t.Fatalf("same key for %+v", e)
		}
	}
}

// TestPumpDeliveryLimitAcrossRestarts: on a classic queue an item that
// kills the process while it is in flight is still set aside after
// amqp.delivery_limit deliveries, counted across restarts by the ledger
// beside the presence store. Here the limit is 4: the gateway sees the
// item redelivered (delivery 2), "crashes" with it in flight, a new
// gateway on the same store sees it again (3) and crashes, and the third
// sets it aside (4) without writing it.
func TestPumpDeliveryLimitAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	body := minimal + "http:\n  listen: \"\"\npresence:\n  store: " + dir + "/p.db\namqp:\n  delivery_limit: 4\n"
	item := amqp.Delivery{Body: []byte(item(1)), MessageId: "poison", Redelivered: true}
	for process, want := range []string{"written", "written", "dead-lettered"} {
		g := testGateway(t, body, Deps{})
		h := startPumpOn(t, g)
		h.tag++
		d := item
		d.DeliveryTag = h.tag
		h.c.d <- d
		if want == "written" {
			testkit.Eventually(t, "written", func() bool { return h.messages() == 1 })
			// The crash: no barrier answered, no ack; the process is gone
			// (its store lock and ledger file with it).
			h.cancel()
			h.s.kill()
			<-h.errc
			h.errc <- nil // for the harness's cleanup
			g.pres.Close()
			g.out.ledger.close()
			continue
		}
		stop := make(chan struct{})
		defer close(stop)
		h.answerBarriers(stop)
		testkit.Eventually(t, "dead letter", func() bool { return len(h.dl.list()) == 1 })
		if r := h.dl.list()[0].reason; !strings.HasPrefix(r, "delivery_limit: delivered 4 times") {
			t.Fatalf("process %d: reason %q", process+1, r)
		}
		if h.messages() != 0 {
			t.Fatalf("process %d wrote the item it should have set aside", process+1)
		}
		h.dl.list()[0].c.resolve(nil)
		testkit.Eventually(t, "acked", func() bool { return h.lastAck() == 1 })
		if n := g.out.ledger.deliveries(g.out.redelivered.key(&d)); n != 0 {
			t.Fatalf("the ledger still holds the item set aside: %d", n)
		}
	}
}
