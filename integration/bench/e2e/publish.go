package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// brokerPID returns the pid of the RabbitMQ that serves amqpURL when it
// runs on this machine: the process listening on its port, else the
// first beam.smp found; -1 if none.
func brokerPID(amqpURL string) int {
	port := 5672
	if u, err := url.Parse(amqpURL); err == nil && u.Port() != "" {
		port, _ = strconv.Atoi(u.Port())
	}
	if pid := ListenerPID(port); pid > 0 {
		return pid
	}
	if pid := FindProcess("beam.smp"); pid > 0 {
		return pid
	}
	return -1
}

// publishItems publishes n items with message ids "<prefix><i>" to q and
// waits for every confirm.
func (e *Env) publishItems(q string, prefix string, n int) error {
	return e.publishTo("", q, prefix, n)
}

// publishTo publishes n items to exchange with routing key key. Big runs
// (the backlog) are split over up to four channels, each pipelined with
// confirms, so that the broker is kept busy; the order in the queue does
// not matter to the measurement.
func (e *Env) publishTo(exchange, key, prefix string, n int) error {
	k := min(4, max(1, n/25000))
	errs := make(chan error, k)
	var wg sync.WaitGroup
	for j := 0; j < k; j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.publishRange(exchange, key, prefix, j*n/k, (j+1)*n/k)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// publishRange publishes the items [from, to) on a channel of its own.
func (e *Env) publishRange(exchange, key, prefix string, from, to int) error {
	ch, err := e.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	c, err := newConfirmer(ch, to-from)
	if err != nil {
		return err
	}
	targets := e.targets()
	ctx := context.Background()
	var body []byte
	now := time.Now().UTC()
	enq := now.Format(time.RFC3339Nano)
	for i := from; i < to; i++ {
		body = outBody(body[:0], i, targets[i%len(targets)], enq)
		err := ch.PublishWithContext(ctx, exchange, key, true, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    prefix + strconv.Itoa(i),
			Timestamp:    now,
			Body:         body,
		})
		if err != nil {
			return fmt.Errorf("publish %d: %w", i, err)
		}
	}
	return c.wait(e.opt.Stall)
}

// targets are the bare JIDs of the receivers.
func (e *Env) targets() []string {
	targets := make([]string, len(e.receivers))
	for i := range targets {
		targets[i] = e.Prosody.JID(receiver(i))
	}
	return targets
}

// confirmer counts the confirms of n publications on a channel in
// confirm mode, and the returns.
type confirmer struct {
	n              int
	acked, nacked  atomic.Int64
	returned       atomic.Int64
	done           chan struct{}
	firstReturnMsg atomic.Value // string
}

func newConfirmer(ch *amqp.Channel, n int) (*confirmer, error) {
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4096))
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	c := &confirmer{n: n, done: make(chan struct{})}
	go func() {
		for r := range returns {
			c.returned.Add(1)
			c.firstReturnMsg.CompareAndSwap(nil, r.ReplyText)
		}
	}()
	go func() {
		closed := false
		for cf := range confirms {
			if cf.Ack {
				c.acked.Add(1)
			} else {
				c.nacked.Add(1)
			}
			if !closed && int(c.acked.Load()+c.nacked.Load()) == n {
				close(c.done)
				closed = true
			}
		}
	}()
	if n == 0 {
		close(c.done)
	}
	return c, nil
}

// wait waits for every confirm, failing when none comes for stall.
func (c *confirmer) wait(stall time.Duration) error {
	pr := newProgress(stall)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-c.done:
			done = true
		case <-tick.C:
			if got := c.acked.Load() + c.nacked.Load(); pr.stalled(got) {
				return fmt.Errorf("publish: %d of %d confirms, none for %s", got, c.n, stall)
			}
		}
	}
	if nk := c.nacked.Load(); nk > 0 {
		return fmt.Errorf("publish: broker nacked %d items", nk)
	}
	if r := c.returned.Load(); r > 0 {
		return fmt.Errorf("publish: %d returned: %v", r, c.firstReturnMsg.Load())
	}
	return nil
}
