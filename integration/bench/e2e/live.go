package e2e

import (
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// liveConsumer consumes the in queue while events arrive and records
// each one's latency.
type liveConsumer struct {
	ch          *amqp.Channel
	ids         *idSet
	sentAt, lat []atomic.Int64
	got         atomic.Int64 // distinct events
	ended       chan struct{}
}

const liveTag = "bench-latency"

func (e *Env) consumeLive(q, prefix string, n int) (*liveConsumer, error) {
	ch, err := e.conn.Channel()
	if err != nil {
		return nil, err
	}
	// No acknowledgements: the broker pushes each event as it is routed.
	ds, err := ch.Consume(q, liveTag, true, false, false, false, nil)
	if err != nil {
		ch.Close()
		return nil, err
	}
	c := &liveConsumer{ch: ch, ids: newIDSet(prefix, n), sentAt: make([]atomic.Int64, n), lat: make([]atomic.Int64, n),
		ended: make(chan struct{})}
	go func() {
		defer close(c.ended)
		for d := range ds {
			now := e.clock()
			if k, ok := c.ids.addIndex(jsonString(d.Body, "id")); ok {
				c.lat[k].Store(max(1, now-c.sentAt[k].Load()))
				c.got.Add(1)
			}
		}
	}()
	return c, nil
}

// wait waits until want events were consumed or refused, failing when
// nothing moves for stall or the bridge exits.
func (c *liveConsumer) wait(want int, refused *atomic.Int64, p *process, stall time.Duration) error {
	pr := newProgress(stall)
	for {
		got := c.got.Load()
		if got+refused.Load() >= int64(want) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited; log:\n%s", p.name, tail(p.log, 4096))
		}
		if pr.stalled(got) {
			return fmt.Errorf("no progress for %s: %d of %d events consumed (%d refused)", stall, got, want, refused.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *liveConsumer) close() {
	_ = c.ch.Cancel(liveTag, false)
	<-c.ended
	c.ch.Close()
}
