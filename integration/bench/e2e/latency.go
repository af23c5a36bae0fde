package e2e

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// The latency runs move items at a steady rate (not as fast as possible)
// through a bridge that runs with the gateway's defaults, amqp.prefetch
// included, and record per item the time from publication (outbound) or
// sending (inbound) to arrival, on one monotonic clock of this process.

// LatencyOut publishes rate items/s for d to the out queue of the running
// gateway and measures publication → arrival at the client.
func (e *Env) LatencyOut(run int, d time.Duration, rate float64) (Result, error) {
	return e.latencyOut(outRun{kind: "latency-out", letter: "l", start: e.gateway(0)}, run, d, rate)
}

// BaselineLatencyOut is LatencyOut through the baseline bridge.
func (e *Env) BaselineLatencyOut(run int, d time.Duration, rate float64) (Result, error) {
	return e.latencyOut(outRun{kind: "baseline-latency-out", letter: "L", start: e.bridge("bridge-out", 0)}, run, d, rate)
}

// LatencyIn makes the senders send rate messages/s in all for d to the
// running gateway and measures sending → delivery of the event to a
// consumer of the in queue.
func (e *Env) LatencyIn(run int, d time.Duration, rate float64) (Result, error) {
	return e.latencyIn(inRun{kind: "latency-in", letter: "j", start: e.gateway(0)}, run, d, rate)
}

// BaselineLatencyIn is LatencyIn through the baseline bridge.
func (e *Env) BaselineLatencyIn(run int, d time.Duration, rate float64) (Result, error) {
	return e.latencyIn(inRun{kind: "baseline-latency-in", letter: "J", start: e.bridge("bridge-in", 0)}, run, d, rate)
}

func (e *Env) latencyOut(o outRun, run int, d time.Duration, rate float64) (res Result, err error) {
	res = Result{Kind: o.kind, Run: run}
	q, err := e.newQueues(o.kind)
	if err != nil {
		return res, err
	}
	defer e.deleteQueues(q)
	total := max(1, int(rate*d.Seconds()))
	prefix := runPrefix(o.letter, run)
	s := newOutSink(prefix, 0, total)
	s.clock, s.pubAt, s.lat = e.clock, make([]atomic.Int64, total), make([]atomic.Int64, total)
	b, end, err := launch(e.receivers, s, o.start, q)
	if err != nil {
		return res, err
	}
	defer end(&err)
	if err := waitReady(b.proc, b.httpAddr, 20*time.Second); err != nil {
		return res, err
	}
	if err := e.waitConsumer(q.out, b.proc); err != nil {
		return res, err
	}
	cpus := e.cpus(b.proc.pid())
	a := cpus.sample()
	pubErr := make(chan error, 1)
	go func() { pubErr <- e.publishPaced(q.out, prefix, total, rate, s.pubAt) }()
	if err := e.waitArrived(s, b.proc); err != nil {
		return res, err
	}
	if err := <-pubErr; err != nil {
		return res, err
	}
	acked, err := e.waitAcked(b.httpAddr, total)
	if err != nil {
		return res, err
	}
	z := cpus.sample()
	s.fillResult(&res, acked)
	res.Items = total // the window runs from the first publication
	e.fill(&res, cpus, a, z)
	res.setLatency(s.lat)
	if err := b.finish(&res); err != nil {
		return res, err
	}
	err = e.checkOutbound(q, s, o.kind, run)
	return res, err
}

func (e *Env) latencyIn(o inRun, run int, d time.Duration, rate float64) (res Result, err error) {
	res = Result{Kind: o.kind, Run: run}
	q, err := e.newQueues(o.kind)
	if err != nil {
		return res, err
	}
	defer e.deleteQueues(q)
	total := max(1, int(rate*d.Seconds()))
	prefix := runPrefix(o.letter, run)
	s := &errSink{}
	b, end, err := launch(e.senders, s, o.start, q)
	if err != nil {
		return res, err
	}
	defer end(&err)
	if err := waitReady(b.proc, b.httpAddr, 20*time.Second); err != nil {
		return res, err
	}
	c, err := e.consumeLive(q.in, prefix, total)
	if err != nil {
		return res, err
	}
	defer c.close()
	cpus := e.cpus(b.proc.pid())
	a := cpus.sample()
	sendErr := make(chan error, 1)
	go func() { sendErr <- e.sendPaced(prefix, total, rate, c.sentAt) }()
	if err := c.wait(total, &s.errs, b.proc, e.opt.Stall); err != nil {
		return res, err
	}
	z := cpus.sample()
	if err := <-sendErr; err != nil {
		return res, err
	}
	res.Items = int(c.got.Load())
	e.fill(&res, cpus, a, z)
	res.setLatency(c.lat)
	res.Errors = s.errs.Load()
	e.inboundMetrics(&res, b.httpAddr, o.kind, run)
	if err := b.finish(&res); err != nil {
		return res, err
	}
	res.Dups = c.ids.dups.Load()
	missing, some := c.ids.missing(20)
	res.Missing = missing
	if int64(missing) > res.Errors {
		return res, fmt.Errorf("%w: %d events missing from %s, %d refused (error stanzas %d), e.g. %v", ErrLost, missing, q.in, int(res.Refused), res.Errors, some)
	}
	return res, nil
}

// waitConsumer waits until the queue has a consumer (the bridge's), so
// that the first items do not wait for it.
func (e *Env) waitConsumer(q string, p *process) error {
	ch, err := e.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for deadline := time.Now().Add(20 * time.Second); ; {
		st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			return err
		}
		if st.Consumers > 0 {
			return nil
		}
		if p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("%s does not consume %s; log:\n%s", p.name, q, tail(p.log, 4096))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setLatency puts p50, p99 and max of the recorded latencies (0: the item
// did not arrive) into r, in ms.
func (r *Result) setLatency(lat []atomic.Int64) {
	v := make([]int64, 0, len(lat))
	for i := range lat {
		if d := lat[i].Load(); d > 0 {
			v = append(v, d)
		}
	}
	if len(v) == 0 {
		return
	}
	slices.Sort(v)
	ms := func(d int64) float64 { return float64(d) / 1e6 }
	// The nearest-rank percentile: the smallest value with at least p of
	// the items at or below it.
	rank := func(p float64) int64 { return v[max(0, int(math.Ceil(float64(len(v))*p))-1)] }
	r.LatItems, r.LatP50, r.LatP99, r.LatMax = len(v), ms(rank(0.50)), ms(rank(0.99)), ms(v[len(v)-1])
}
