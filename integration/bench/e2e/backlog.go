package e2e

import (
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Backlog is a backlog of n items drained by the gateway and by the
// baseline bridge, each from an out queue of its own, with the gateway's
// default amqp.prefetch (none in its config): the rate from the first item
// received to the last one acknowledged, and the peak RSS while draining.
// Every id must arrive once, as in Outbound.
//
// The items are published once, at the first run, through a fanout
// exchange bound to every out queue: a million items cost the broker one
// publication each instead of one per bridge.
type Backlog struct {
	e      *Env
	n      int
	kinds  []string
	once   sync.Once
	err    error
	queues map[string]queues
}

// Letter of the ids of the backlog items.
const backlogLetter = "k"

// NewBacklog prepares a backlog of n items for the kinds "backlog" (the
// gateway) and "baseline-backlog" given.
func (e *Env) NewBacklog(n int, kinds ...string) *Backlog {
	return &Backlog{e: e, n: n, kinds: kinds}
}

// Gateway drains the backlog through the gateway.
func (b *Backlog) Gateway(run int) (Result, error) {
	return b.drain("backlog", run, b.e.gateway(0))
}

// Bridge drains the backlog through the baseline bridge, with the same
// prefetch as the gateway (its default).
func (b *Backlog) Bridge(run int) (Result, error) {
	return b.drain("baseline-backlog", run, b.e.bridge("bridge-out", 0))
}

func (b *Backlog) drain(kind string, run int, start starter) (Result, error) {
	b.once.Do(func() { b.err = b.fill() })
	if b.err != nil {
		return Result{Kind: kind, Run: run}, b.err
	}
	q, ok := b.queues[kind]
	if !ok {
		return Result{Kind: kind, Run: run}, fmt.Errorf("backlog: %s not prepared", kind)
	}
	delete(b.queues, kind)
	return b.e.outbound(outRun{kind: kind, letter: backlogLetter, start: start, queues: &q}, 1, b.n, 0)
}

// fill declares an out queue per kind and publishes the items once to all
// of them through a fanout exchange.
func (b *Backlog) fill() error {
	e := b.e
	b.queues = map[string]queues{}
	ch, err := e.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	ex := "bench-backlog-" + randomHex(4)
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, false, true, false, false, nil); err != nil {
		return err
	}
	defer func() { _ = ch.ExchangeDelete(ex, false, false) }()
	for _, k := range b.kinds {
		q, err := e.newQueues(k)
		if err != nil {
			return err
		}
		b.queues[k] = q
		if err := ch.QueueBind(q.out, "", ex, false, nil); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := e.publishTo(ex, "", runPrefix(backlogLetter, 1), b.n); err != nil {
		return err
	}
	e.opt.Logf("backlog: published %d items to %d queues in %s", b.n, len(b.kinds), time.Since(t0).Round(time.Millisecond))
	return nil
}

// Close deletes the queues of the kinds that did not run.
func (b *Backlog) Close() {
	for k, q := range b.queues {
		b.e.deleteQueues(q)
		delete(b.queues, k)
	}
}
