package e2e

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// outSink counts the messages the receivers get and samples the CPU times
// when the warm-up is over and when the last item has arrived. With pubAt
// set (the latency run) it also records each item's latency, arrival
// minus publication, in lat.
type outSink struct {
	ids         *idSet
	warm, total int64
	got         atomic.Int64 // distinct ids received
	errs        atomic.Int64 // type='error' messages
	cpus        atomic.Pointer[cpuSet]
	clock       func() int64   // monotonic ns (latency runs)
	pubAt, lat  []atomic.Int64 // per item: published at, latency (ns)

	mu         sync.Mutex
	start, end cpuSample
	startCount int64
	started    chan struct{}
	ended      chan struct{}
}

var typeError = []byte("error")

func (s *outSink) messages(ids, types [][]byte) {
	var arrived int64
	if s.pubAt != nil {
		arrived = s.clock()
	}
	fresh := int64(0)
	for i, id := range ids {
		if string(types[i]) == string(typeError) {
			s.errs.Add(1)
			continue
		}
		k, ok := s.ids.addIndex(id)
		if !ok {
			continue
		}
		fresh++
		if s.pubAt != nil {
			s.lat[k].Store(max(1, arrived-s.pubAt[k].Load()))
		}
	}
	if fresh == 0 {
		return
	}
	now := s.got.Add(fresh)
	old := now - fresh
	threshold := max(s.warm, 1)
	if old < threshold && now >= threshold {
		var smp cpuSample
		if c := s.cpus.Load(); c != nil {
			smp = c.sample()
		}
		s.mu.Lock()
		s.start, s.startCount = smp, now
		s.mu.Unlock()
		close(s.started)
	}
	if old < s.total && now >= s.total {
		var smp cpuSample
		if c := s.cpus.Load(); c != nil {
			smp = c.sample()
		}
		s.mu.Lock()
		s.end = smp
		s.mu.Unlock()
		close(s.ended)
	}
}

func newOutSink(prefix string, warm, total int) *outSink {
	return &outSink{ids: newIDSet(prefix, total), warm: int64(warm), total: int64(total),
		started: make(chan struct{}), ended: make(chan struct{})}
}

// Outbound measures n items (after warm ones) through the gateway.
func (e *Env) Outbound(run, n, warm int) (Result, error) {
	return e.outbound(outRun{kind: "outbound", letter: "o", start: e.gateway(e.opt.Prefetch)}, run, n, warm)
}

const sentMetric = `xmppgw_outbound_items_total{result="sent"}`

// outRun says what an outbound measurement runs.
type outRun struct {
	kind, letter string
	start        starter
	// noBroker: the items are not published to the out queue (the raw run
	// makes them itself).
	noBroker bool
	// queues, if set, are the run's queues with the items already in the
	// out queue (a shared backlog); they are deleted at the end all the
	// same.
	queues *queues
	// window, if set, marks the measured window (ServerCost), which is
	// then quiet at both ends: only the warm items are published (raw:
	// written) first; once they have all arrived and been acknowledged,
	// window.on, then the other n items, and window.off once every item is
	// acknowledged.
	window *window
	// release (raw with a window): lets the raw component write the items
	// after the warm ones.
	release func(b *bridge) error
}

// window marks a measured window: on at its start, off at its end, which
// returns what was counted in it (Prosody's instructions).
type window struct {
	on  func() error
	off func() (float64, error)
}

// runPrefix is the prefix of the ids of run of a kind (its letter).
func runPrefix(letter string, run int) string { return fmt.Sprintf("%s%d.", letter, run) }

// outbound publishes warm+n items to a fresh out queue, then starts the
// bridge and measures the window from the end of the warm-up (warm 0: the
// first arrival) until every item is acknowledged.
func (e *Env) outbound(o outRun, run, n, warm int) (res Result, err error) {
	res = Result{Kind: o.kind, Run: run}
	var q queues
	if o.queues != nil {
		q = *o.queues
	} else if q, err = e.newQueues(o.kind); err != nil {
		return res, err
	}
	defer e.deleteQueues(q)
	total := n + warm
	prefix := runPrefix(o.letter, run)
	if o.window != nil {
		return e.outboundQuiet(o, q, res, prefix, n, warm)
	}
	if !o.noBroker && o.queues == nil {
		t0 := time.Now()
		if err := e.publishItems(q.out, prefix, total); err != nil {
			return res, err
		}
		e.opt.Logf("%s run %d: published %d items in %s", o.kind, run, total, time.Since(t0).Round(time.Millisecond))
	}

	s := newOutSink(prefix, warm, total)
	b, end, err := launch(e.receivers, s, o.start, q)
	if err != nil {
		return res, err
	}
	defer end(&err)
	cpus := e.cpus(b.proc.pid())
	s.cpus.Store(cpus)
	perf := e.startPerf(o.kind, run, b.proc.pid())
	if err := e.waitArrived(s, b.proc); err != nil {
		return res, err
	}
	acked, err := e.waitAcked(b.httpAddr, total)
	if err != nil {
		return res, err
	}
	ackSample := cpus.sample()
	perf.stop(e)
	startS := s.fillResult(&res, acked)
	e.fill(&res, cpus, startS, ackSample)
	if err := b.finish(&res); err != nil {
		return res, err
	}
	err = e.checkOutbound(q, s, o.kind, run)
	return res, err
}

// outboundQuiet is outbound with a window (outRun.window) quiet at both
// ends: the warm items alone, then the window around the n others.
func (e *Env) outboundQuiet(o outRun, q queues, res Result, prefix string, n, warm int) (_ Result, err error) {
	if warm < 1 {
		return res, errors.New("a measured window needs a warm-up")
	}
	total := n + warm
	if !o.noBroker {
		if err := e.publishRange("", q.out, prefix, 0, warm); err != nil {
			return res, err
		}
	}
	s := newOutSink(prefix, warm, total)
	b, end, err := launch(e.receivers, s, o.start, q)
	if err != nil {
		return res, err
	}
	defer end(&err)
	if err := e.waitFor(s, s.started, b.proc); err != nil {
		return res, err
	}
	if _, err := e.waitAcked(b.httpAddr, warm); err != nil {
		return res, err
	}
	cpus := e.cpus(b.proc.pid())
	if err := o.window.on(); err != nil {
		return res, err
	}
	a := cpus.sample()
	if o.noBroker {
		err = o.release(b)
	} else {
		err = e.publishRange("", q.out, prefix, warm, total)
	}
	if err != nil {
		return res, err
	}
	if err := e.waitArrived(s, b.proc); err != nil {
		return res, err
	}
	acked, err := e.waitAcked(b.httpAddr, total)
	if err != nil {
		return res, err
	}
	z := cpus.sample()
	counted, err := o.window.off()
	if err != nil {
		return res, err
	}
	s.fillResult(&res, acked)
	res.Items = n
	e.fill(&res, cpus, a, z)
	res.ProsodyInstr = counted / float64(n)
	if err := b.finish(&res); err != nil {
		return res, err
	}
	return res, e.checkOutbound(q, s, o.kind, res.Run)
}

// waitArrived waits until the receivers have the last item, failing when
// nothing moves for opt.Stall or the bridge exits.
func (e *Env) waitArrived(s *outSink, p *process) error { return e.waitFor(s, s.ended, p) }

// waitFor waits until done is closed (the warm-up or every item arrived),
// failing when nothing moves for opt.Stall or the bridge exits.
func (e *Env) waitFor(s *outSink, done <-chan struct{}, p *process) error {
	pr := newProgress(e.opt.Stall)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-p.done:
			return fmt.Errorf("%s exited; log:\n%s", p.name, tail(p.log, 4096))
		case <-tick.C:
			if g := s.got.Load(); pr.stalled(g) {
				return e.lost(s, fmt.Sprintf("no progress for %s: %d of %d items received", e.opt.Stall, g, s.total))
			}
		}
	}
}

// waitAcked waits until the bridge has acknowledged every item to the
// broker (its sent counter), for at most opt.Stall, and returns the count.
func (e *Env) waitAcked(httpAddr string, total int) (float64, error) {
	deadline := time.Now().Add(e.opt.Stall)
	var acked float64
	for {
		m, err := scrape(httpAddr)
		if err == nil {
			acked = m[sentMetric]
			if acked >= float64(total) {
				return acked, nil
			}
		}
		if time.Now().After(deadline) {
			return acked, fmt.Errorf("only %v of %d items acknowledged %s after the last arrived", acked, total, e.opt.Stall)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fillResult puts what the receivers counted into res: the items of the
// window (from the end of the warm-up), the receive rate, duplicates and
// errors, and returns the CPU sample taken at the end of the warm-up.
func (s *outSink) fillResult(res *Result, acked float64) cpuSample {
	s.mu.Lock()
	startS, endS, startCount := s.start, s.end, s.startCount
	s.mu.Unlock()
	res.Items = int(s.total) - int(startCount)
	res.Metrics = acked
	if d := endS.at.Sub(startS.at).Seconds(); d > 0 {
		res.RecvRate = float64(res.Items) / d
	}
	res.Dups = s.ids.dups.Load()
	res.Errors = s.errs.Load()
	return startS
}

// checkOutbound checks the queues of a run after the bridge stopped:
// nothing left unacknowledged, nothing dead-lettered.
func (e *Env) checkOutbound(q queues, s *outSink, kind string, run int) error {
	ch, err := e.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if left, err := queueLen(ch, q.out); err != nil {
		return err
	} else if left != 0 {
		return fmt.Errorf("%d items left in %s after a graceful stop (not acknowledged)", left, q.out)
	}
	if dl, err := queueLen(ch, q.dead); err == nil && dl != 0 {
		return fmt.Errorf("%d items dead-lettered", dl)
	}
	if stray := s.ids.stray.Load(); stray != 0 {
		e.opt.Logf("%s run %d: %d messages with unexpected ids", kind, run, stray)
	}
	return nil
}

// lost reports the missing ids.
func (e *Env) lost(s *outSink, why string) error {
	n, some := s.ids.missing(20)
	return fmt.Errorf("%w: %s; %d ids missing, e.g. %s", ErrLost, why, n, strings.Join(some, " "))
}
