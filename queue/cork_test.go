package queue

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// recordConn is a net.Conn that records its writes.
type recordConn struct {
	net.Conn // nil: only Write and Close are used
	mu       sync.Mutex
	writes   [][]byte
	fail     error
	closed   bool
}

func (r *recordConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (r *recordConn) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordConn) sent() (n int, all []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes), bytes.Join(r.writes, nil)
}

func TestCorkConn(t *testing.T) {
	r := &recordConn{}
	c := newCorkConn(r)
	mustWrite := func(s string) {
		t.Helper()
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	mustWrite("a") // not corked: at once
	if n, _ := r.sent(); n != 1 {
		t.Fatalf("%d writes uncorked, want 1", n)
	}

	c.Cork()
	c.Cork() // nested
	mustWrite("b")
	mustWrite("c")
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.sent(); n != 1 {
		t.Fatalf("sent while still corked once: %d writes", n)
	}
	mustWrite("d")
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	if n, all := r.sent(); n != 2 || string(all) != "abcd" {
		t.Fatalf("after the last Uncork: %d writes %q, want 2 and \"abcd\"", n, all)
	}
	if err := c.Uncork(); err != nil { // unmatched: harmless
		t.Fatal(err)
	}

	// Past corkMax the held bytes and the write go out at once, in order.
	c.Cork()
	big := bytes.Repeat([]byte("x"), corkMax-1)
	mustWrite(string(big))
	mustWrite("yz")
	if n, all := r.sent(); n != 4 || !bytes.HasSuffix(all, append(big, "yz"...)) {
		t.Fatalf("over the bound: %d writes, want 4 (held, then the write)", n)
	}
	mustWrite("e")
	if err := c.Flush(); err != nil { // Flush sends, still corked
		t.Fatal(err)
	}
	mustWrite("f")
	if n, _ := r.sent(); n != 5 {
		t.Fatalf("Flush: %d writes, want 5", n)
	}

	// Release sends what is held, and no Cork holds anything any more.
	c.Release()
	c.Cork()
	mustWrite("g")
	if n, all := r.sent(); n != 7 || !bytes.HasSuffix(all, []byte("efg")) {
		t.Fatalf("after Release: %d writes ending %q", n, all[len(all)-3:])
	}

	// A failed flush closes the socket and fails every later write.
	r2 := &recordConn{fail: errors.New("broken pipe")}
	c2 := newCorkConn(r2)
	c2.Cork()
	if _, err := c2.Write([]byte("h")); err != nil {
		t.Fatalf("held write failed: %v", err)
	}
	if err := c2.Uncork(); err == nil || !r2.closed {
		t.Fatalf("failed flush: err %v, socket closed %v", err, r2.closed)
	}
	if _, err := c2.Write([]byte("i")); err == nil {
		t.Fatal("write after a failed flush succeeded")
	}
}

// Corked publishes leave in one write at Uncork and are confirmed as any.
func TestPublishCorked(t *testing.T) {
	p, q, cs := publishCorked(t, 50)
	ctx := testCtx(t)
	p.sock.mu.Lock()
	held := len(p.sock.held)
	p.sock.mu.Unlock()
	if held == 0 {
		t.Fatal("nothing held while corked")
	}
	p.Uncork()
	for i, c := range cs {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	if m, _, err := p.QueueDepth(q); err != nil || m != 50 {
		t.Fatalf("QueueDepth = %d, %v; want 50", m, err)
	}
}

// Close sends what a cork holds before it waits for the confirms.
func TestPublisherCloseCorked(t *testing.T) {
	p, _, cs := publishCorked(t, 20)
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= CloseTimeout {
		t.Fatalf("Close took %v: it waited for confirms held by the cork", d)
	}
	for i, c := range cs {
		if err := c.Err(); err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
}

// A publish that must wait for a blocked broker first sends what is held.
func TestPublishBlockedFlushesCork(t *testing.T) {
	p, q, cs := publishCorked(t, 10)
	p.onBlocked(amqp.Blocking{Active: true, Reason: "low on memory"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Publish(ctx, q, amqp.Publishing{}, true); !errors.Is(err, ErrBlocked) {
		t.Fatalf("Publish while blocked: %v, want ErrBlocked", err)
	}
	for i, c := range cs { // still corked: only the flush sent them
		if err := c.Wait(testCtx(t)); err != nil {
			t.Fatalf("confirm %d: %v", i, err)
		}
	}
	p.onBlocked(amqp.Blocking{Active: false})
	p.Uncork()
}

// publishCorked declares a queue and publishes n messages to it corked.
func publishCorked(t *testing.T, n int) (*Publisher, string, []*Confirm) {
	t.Helper()
	q := uniqueName(t, "test-queue-")
	newAdmin(t).declare(t, q, nil)
	p := dialPublisher(t)
	p.Cork()
	cs := make([]*Confirm, 0, n)
	for range n {
		c, err := p.Publish(testCtx(t), q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(`{"n":1}`)}, true)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return p, q, cs
}
