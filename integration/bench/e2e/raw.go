package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The raw limit: what Prosody reaches moving the same stanzas with no
// broker at all, measured like the bridges (a separate process, the bench
// binary re-executed with -role raw-out|raw-in).
//
//   - raw-out: the outbound baseline bridge's own write loop (batches of
//     up to 256 stanzas per write, a ping barrier about once per round trip,
//     every prefetch/4 items at most) fed with the run's items made in
//     memory before the component connects, instead of consumed from a
//     queue: the stanzas are written as fast as the socket takes them.
//   - raw-in: a component that reads its stream with the clients' scanner
//     and counts the distinct ids of the messages the senders send it.
//
// Prosody's CPU per item in these runs is the floor the bridge's and the
// gateway's are compared to.

// Names of the raw-in process's extra counters.
const (
	rawDupsMetric  = "bench_raw_duplicates"
	rawStrayMetric = "bench_raw_stray"
)

// RawOut measures n items (after warm ones) written by the raw-out
// component.
func (e *Env) RawOut(run, n, warm int) (Result, error) {
	total, prefix := n+warm, runPrefix("w", run)
	start := e.bridge("raw-out", e.opt.Prefetch, "-n", strconv.Itoa(total), "-prefix", prefix, "-targets", strings.Join(e.targets(), ","))
	return e.outbound(outRun{kind: "raw-out", letter: "w", start: start, noBroker: true}, run, n, warm)
}

// RawIn measures n messages (after warm ones) sent to the raw-in
// component.
func (e *Env) RawIn(run, n, warm int) (Result, error) {
	total, prefix := n+warm, runPrefix("x", run)
	start := e.bridge("raw-in", e.opt.Prefetch, "-n", strconv.Itoa(total), "-prefix", prefix)
	return e.inbound(inRun{kind: "raw-in", letter: "x", start: start, raw: true}, run, n, warm)
}

// rawDeliveries makes the n items of a raw-out run as deliveries, with the
// bodies the publisher of the other runs sends.
func rawDeliveries(n int, prefix string, targets []string) []amqp.Delivery {
	ds := make([]amqp.Delivery, n)
	enq := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range ds {
		ds[i] = amqp.Delivery{DeliveryTag: uint64(i + 1), MessageId: prefix + strconv.Itoa(i),
			Body: outBody(nil, i, targets[i%len(targets)], enq)}
	}
	return ds
}

// noBroker is the acker of the raw run: nothing to acknowledge.
type noBroker struct{}

func (noBroker) Ack(uint64, bool) error    { return nil }
func (noBroker) Cancel(string, bool) error { return nil }

// rawOut writes the items through the outbound bridge's loop, then waits
// for SIGTERM (the benchmark stops it as it stops the others). With hold
// > 0, only the first hold items are written until release is closed.
func rawOut(ctx context.Context, conn net.Conn, items []amqp.Delivery, hold int, release <-chan struct{}, prefetch int, domain, server string, counted *atomic.Int64) error {
	deliveries := make(chan amqp.Delivery, max(prefetch, 1))
	go func() {
		defer close(deliveries)
		for i := range items {
			if i == hold && hold > 0 {
				select {
				case <-release:
				case <-ctx.Done():
					return
				}
			}
			select {
			case deliveries <- items[i]:
				items[i] = amqp.Delivery{} // written: let it go
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := newOutBridge(conn, noBroker{}, deliveries, prefetch, domain, server, 0, counted).run(ctx.Done()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// countSink counts the distinct ids of the messages read (not the error
// ones).
type countSink struct {
	ids     *idSet
	counted *atomic.Int64
}

func (s *countSink) messages(ids, types [][]byte) {
	fresh := int64(0)
	for i, id := range ids {
		if string(types[i]) != string(typeError) && s.ids.add(id) {
			fresh++
		}
	}
	s.counted.Add(fresh)
}

// rawIn reads the component stream and counts until SIGTERM.
func rawIn(ctx context.Context, conn net.Conn, ids *idSet, counted *atomic.Int64) error {
	c := &rawClient{conn: conn, done: make(chan struct{})}
	c.setSink(&countSink{ids: ids, counted: counted})
	go c.read(nil)
	select {
	case <-ctx.Done():
		conn.Close()
		<-c.done
		return nil
	case <-c.done:
		return fmt.Errorf("component stream: %v", c.err)
	}
}
