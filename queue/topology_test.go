package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func testTopology(t *testing.T, queueType string) Topology {
	in := uniqueName(t, "test-queue-in-")
	return Topology{
		OutQueue:        uniqueName(t, "test-queue-out-"),
		InQueue:         in,
		DeadLetterQueue: uniqueName(t, "test-queue-dead-"),
		Extra:           []string{uniqueName(t, "test-queue-route-"), in},
		QueueType:       queueType,
	}
}

func TestDeclare(t *testing.T) {
	for i, qt := range []string{"", Classic, Quorum} {
		a := newAdmin(t)
		top := testTopology(t, qt)
		if err := Declare(a.conn, top); err != nil {
			t.Fatalf("%d: Declare(%q): %v", i, qt, err)
		}
		// Declaring again is a no-op.
		if err := Declare(a.conn, top); err != nil {
			t.Fatalf("%d: second Declare(%q): %v", i, qt, err)
		}
		if got := top.Queues(); len(got) != 4 {
			t.Fatalf("%d: Queues() = %v, want 4 distinct", i, got)
		}
		for _, q := range top.Queues() {
			if _, err := a.inspect(t, q); err != nil {
				t.Errorf("%d: passive declare %s: %v", i, q, err)
			}
		}
		// The arguments are the ones we mean: the same declaration by a
		// plain client succeeds, a different one fails.
		wantType := amqp.Table{}
		if qt == Quorum {
			wantType[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
		}
		ch := a.channel(t)
		if _, err := ch.QueueDeclare(top.InQueue, true, false, false, false, wantType); err != nil {
			t.Errorf("%d: plain declare of %s: %v", i, top.InQueue, err)
		}
		outArgs := amqp.Table{amqp.SingleActiveConsumerArg: true,
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": top.DeadLetterQueue}
		if qt == Quorum {
			outArgs["x-dead-letter-strategy"] = "at-least-once"
			outArgs["x-overflow"] = "reject-publish"
		}
		for k, v := range wantType {
			outArgs[k] = v
		}
		if _, err := ch.QueueDeclare(top.OutQueue, true, false, false, false, outArgs); err != nil {
			t.Errorf("%d: declare of %s with single active consumer: %v", i, top.OutQueue, err)
		}
		if _, err := a.channel(t).QueueDeclare(top.OutQueue, true, false, false, false, wantType); !isAMQPCode(err, amqp.PreconditionFailed) {
			t.Errorf("%d: declare of %s without single active consumer: %v, want 406", i, top.OutQueue, err)
		}
	}
}

// TestDeclareLegacyOutQueue: an out queue declared by an older gateway
// (single active consumer, no dead-letter arguments) is used as it is, with
// a warning through Legacy, and the rest is declared.
func TestDeclareLegacyOutQueue(t *testing.T) {
	a := newAdmin(t)
	top := testTopology(t, Classic)
	a.declare(t, top.OutQueue, amqp.Table{amqp.SingleActiveConsumerArg: true})
	var warned []string
	top.Legacy = func(q, detail string) { warned = append(warned, q+": "+detail) }
	if err := Declare(a.conn, top); err != nil {
		t.Fatalf("Declare over a legacy out queue: %v", err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], top.OutQueue) || !strings.Contains(warned[0], "x-dead-letter-exchange") {
		t.Fatalf("warnings %q", warned)
	}
	for _, q := range top.Queues() {
		if _, err := a.inspect(t, q); err != nil {
			t.Errorf("passive declare %s: %v", q, err)
		}
	}
}

// TestOutQueueDeadLettersExpired: what expires in the out queue is moved by
// the broker to the dead-letter queue, with x-death naming the reason.
func TestOutQueueDeadLettersExpired(t *testing.T) {
	a := newAdmin(t)
	top := testTopology(t, Classic)
	if err := Declare(a.conn, top); err != nil {
		t.Fatal(err)
	}
	ch := a.channel(t)
	if err := ch.Publish("", top.OutQueue, true, false, amqp.Publishing{Body: []byte(`{"target":"a@b","text":"late"}`), Expiration: "1", MessageId: "exp-1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, ok, err := ch.Get(top.DeadLetterQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			deaths, _ := d.Headers["x-death"].([]any)
			if d.MessageId != "exp-1" || len(deaths) == 0 || fmt.Sprint(deaths[0].(amqp.Table)["reason"]) != "expired" {
				t.Fatalf("dead letter %s: headers %v", d.MessageId, d.Headers)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired item never reached the dead-letter queue")
		}
		// The broker expires messages at the head of the queue when it
		// looks: a passive declare makes it look.
		if _, err := a.inspect(t, top.OutQueue); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeclareConflict(t *testing.T) {
	a := newAdmin(t)
	top := testTopology(t, Classic)
	// Someone declared the out queue as a quorum queue.
	a.declare(t, top.OutQueue, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum, amqp.SingleActiveConsumerArg: true})

	err := Declare(a.conn, top)
	if !errors.Is(err, ErrTopology) {
		t.Fatalf("Declare: %v, want ErrTopology", err)
	}
	var te *TopologyError
	if !errors.As(err, &te) || te.Queue != top.OutQueue {
		t.Fatalf("Declare: %#v, want a *TopologyError of %s", err, top.OutQueue)
	}
	msg := err.Error()
	for _, want := range []string{top.OutQueue, "x-queue-type", "amqp.queue_type", "delete it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	t.Log(msg)
	// The other queues were declared anyway, and the connection still works.
	if a.conn.IsClosed() {
		t.Fatal("connection closed by the conflict")
	}
	for _, q := range []string{top.InQueue, top.DeadLetterQueue, top.Extra[0]} {
		if _, err := a.inspect(t, q); err != nil {
			t.Errorf("passive declare %s: %v", q, err)
		}
	}
	// And the reverse: classic queues exist, the config says quorum.
	top.QueueType = Quorum
	err = Declare(a.conn, top)
	if !errors.Is(err, ErrTopology) {
		t.Fatalf("Declare quorum over classic: %v, want ErrTopology", err)
	}
	for _, q := range []string{top.InQueue, top.DeadLetterQueue, top.Extra[0]} {
		if !strings.Contains(err.Error(), q) {
			t.Errorf("error %q does not name %s", err, q)
		}
	}
	if strings.Contains(err.Error(), top.OutQueue) {
		t.Errorf("error %q names %s, which matches", err, top.OutQueue)
	}
}

func TestDeclareBadType(t *testing.T) {
	a := newAdmin(t)
	err := Declare(a.conn, Topology{OutQueue: "x", QueueType: "stream"})
	if !errors.Is(err, ErrTopology) || !strings.Contains(err.Error(), "amqp.queue_type") {
		t.Fatalf("Declare: %v, want ErrTopology naming amqp.queue_type", err)
	}
}

func TestPublisherDeclare(t *testing.T) {
	a := newAdmin(t)
	top := testTopology(t, Quorum)
	p := dialPublisher(t)
	if err := p.Declare(top); err != nil {
		t.Fatal(err)
	}
	top.QueueType = Classic
	if err := p.Declare(top); !errors.Is(err, ErrTopology) {
		t.Fatalf("Declare classic over quorum: %v, want ErrTopology", err)
	}
	// The publishing channel is unharmed.
	c, err := p.Publish(testCtx(t), top.InQueue, amqp.Publishing{Body: []byte("x")}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if qi, err := a.inspect(t, top.InQueue); err != nil || qi.Messages != 1 {
		t.Fatalf("in queue: %d messages, %v", qi.Messages, err)
	}
}
