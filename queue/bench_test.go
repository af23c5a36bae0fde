package queue

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BenchmarkPublishConfirm publishes b.N persistent, mandatory ~200-byte
// messages pipelined and waits for every confirm: each publish written on
// its own ("each"), or held by a cork and written 64 at a time ("corked"),
// as the inbound loop does. It reports the CPU per message of this process
// and of the broker (beam.smp, read from /proc; 0 when not found).
func BenchmarkPublishConfirm(b *testing.B) {
	for _, qt := range []string{Classic, Quorum} {
		for _, batch := range []int{1, 64} {
			name := qt + "/each"
			if batch > 1 {
				name = qt + "/corked"
			}
			b.Run(name, func(b *testing.B) {
				_, q := benchQueue(b, qt)
				p := dialPublisher(b)
				ctx := testCtx(b)
				body := make([]byte, 200)
				cs := make([]*Confirm, 0, b.N)
				b.ResetTimer()
				start := time.Now()
				cpu, broker := cpuTime(), brokerCPU()
				for i := 0; i < b.N; i++ {
					if batch > 1 && i%batch == 0 {
						p.Cork()
					}
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
					if batch > 1 && (i%batch == batch-1 || i == b.N-1) {
						p.Uncork()
					}
				}
				for _, c := range cs {
					if err := c.Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
				b.ReportMetric(float64(cpuTime()-cpu)/1e3/float64(b.N), "cpu-µs/msg")
				b.ReportMetric(float64(brokerCPU()-broker)/1e3/float64(b.N), "broker-cpu-µs/msg")
			})
		}
	}
}

// benchQueue declares a queue of type qt for a benchmark.
func benchQueue(b *testing.B, qt string) (*admin, string) {
	a := newAdmin(b)
	q := uniqueName(b, "test-queue-bench-")
	var args amqp.Table
	if qt == Quorum {
		args = amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	}
	a.declare(b, q, args)
	return a, q
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerCPU is the CPU time so far of the first beam.smp process found in
// /proc (RabbitMQ on this machine), 0 when none is.
func brokerCPU() time.Duration {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "beam.smp" {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			return 0
		}
		// Fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th of the line, in clock ticks (100/s).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+s) * 10 * time.Millisecond
	}
	return 0
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
			a, q := benchQueue(b, qt)
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
