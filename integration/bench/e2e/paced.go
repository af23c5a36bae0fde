package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// pacer lets through, at each tick, the items due at rate per second
// since it started.
type pacer struct {
	start time.Time
	rate  float64
	tick  *time.Ticker
}

func newPacer(rate float64) *pacer {
	period := max(time.Millisecond, time.Duration(float64(time.Second)/rate))
	return &pacer{start: time.Now(), rate: rate, tick: time.NewTicker(period)}
}

// due returns how many of n items are due now (at least one: the first
// is due at the start).
func (p *pacer) due(n int) int { return min(n, 1+int(time.Since(p.start).Seconds()*p.rate)) }

// wait waits for the next tick.
func (p *pacer) wait() { <-p.tick.C }

func (p *pacer) stop() { p.tick.Stop() }

// publishPaced publishes n items with ids prefix+i to q at rate items/s
// on one channel pipelined with confirms, storing each one's publication
// time (e.clock) in pubAt, and waits for every confirm.
func (e *Env) publishPaced(q, prefix string, n int, rate float64, pubAt []atomic.Int64) error {
	ch, err := e.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	c, err := newConfirmer(ch, n)
	if err != nil {
		return err
	}
	targets := e.targets()
	ctx := context.Background()
	var body []byte
	p := newPacer(rate)
	defer p.stop()
	for i := 0; i < n; p.wait() {
		for due := p.due(n); i < due; i++ {
			now := time.Now()
			body = outBody(body[:0], i, targets[i%len(targets)], now.UTC().Format(time.RFC3339Nano))
			pubAt[i].Store(e.clock())
			err := ch.PublishWithContext(ctx, "", q, true, false, amqp.Publishing{
				ContentType: "application/json", DeliveryMode: amqp.Persistent,
				MessageId: prefix + strconv.Itoa(i), Timestamp: now, Body: body,
			})
			if err != nil {
				return fmt.Errorf("publish %d: %w", i, err)
			}
		}
	}
	return c.wait(e.opt.Stall)
}

// sendPaced makes the senders send n messages at rate messages/s in all,
// in turn, one write each, storing each one's sending time in sentAt.
func (e *Env) sendPaced(prefix string, n int, rate float64, sentAt []atomic.Int64) error {
	target := "notices@" + e.Prosody.ComponentDomain
	var buf []byte
	p := newPacer(rate)
	defer p.stop()
	for i := 0; i < n; p.wait() {
		for due := p.due(n); i < due; i++ {
			buf = e.appendInMessage(buf[:0], target, prefix, i)
			sentAt[i].Store(e.clock())
			if err := e.senders[i%len(e.senders)].write(buf); err != nil {
				return err
			}
		}
	}
	return nil
}
