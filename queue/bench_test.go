package queue

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkPublishConfirm publishes b.N persistent, mandatory ~200-byte
// messages pipelined and waits for every confirm.
func BenchmarkPublishConfirm(b *testing.B) {
	for _, qt := range []string{Classic, Quorum} {
		b.Run(qt, func(b *testing.B) {
			a := newAdmin(b)
			q := uniqueName(b, "test-queue-bench-")
			var args amqp.Table
			if qt == Quorum {
				args = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
			}
			a.declare(b, q, args)
			p := dialPublisher(b)
			ctx := testCtx(b)
			body := make([]byte, 200)
			cs := make([]*Confirm, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c, err := p.Publish(ctx, q, amqp.Publishing{
					ContentType:  "application/json",
					DeliveryMode: amqp.Persistent,
					MessageId:    fmt.Sprint(i),
					Timestamp:    start,
					Body:         body,
				}, true)
				if err != nil {
					b.Fatal(err)
				}
				cs = append(cs, c)
			}
			for _, c := range cs {
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkConsumeAck consumes b.N prefilled messages with prefetch 1000
// and acknowledges them with multiple=true every 100.
func BenchmarkConsumeAck(b *testing.B) {
	for _, qt := range []string{Classic, Quorum} {
		b.Run(qt, func(b *testing.B) {
			a := newAdmin(b)
			q := uniqueName(b, "test-queue-bench-")
			top := Topology{OutQueue: q, QueueType: qt}
			if err := Declare(a.conn, top); err != nil {
				b.Fatal(err)
			}
			p := dialPublisher(b)
			ctx := testCtx(b)
			body := make([]byte, 200)
			var last *Confirm
			for i := 0; i < b.N; i++ {
				c, err := p.Publish(ctx, q, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: body}, false)
				if err != nil {
					b.Fatal(err)
				}
				last = c
			}
			if err := last.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			c, err := Consume(ctx, ConsumerConfig{URL: testURL(), Queue: q, Prefetch: 1000, Topology: top, Name: "xmppgw bench consumer"})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				d, ok := <-c.Deliveries()
				if !ok {
					b.Fatalf("deliveries closed: %v", c.Err())
				}
				if i%100 == 99 || i == b.N-1 {
					if err := c.Ack(d.DeliveryTag, true); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPublishBaseline is BenchmarkPublishConfirm with amqp091 alone
// (no return correlation), for comparison.
func BenchmarkPublishBaseline(b *testing.B) {
	for _, qt := range []string{Classic, Quorum} {
		b.Run(qt, func(b *testing.B) {
			a := newAdmin(b)
			q := uniqueName(b, "test-queue-bench-")
			var args amqp.Table
			if qt == Quorum {
				args = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
			}
			a.declare(b, q, args)
			body := make([]byte, 200)
			dcs := make([]*amqp.DeferredConfirmation, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				dc, err := a.ch.PublishWithDeferredConfirm("", q, true, false, amqp.Publishing{
					ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: fmt.Sprint(i), Timestamp: start, Body: body})
				if err != nil {
					b.Fatal(err)
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				dc.Wait()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
