package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// outSink counts the messages the receivers get and samples the CPU times
// when the warm-up is over and when the last item has arrived.
type outSink struct {
	ids         *idSet
	warm, total int64
	got         atomic.Int64 // distinct ids received
	errs        atomic.Int64 // type='error' messages
	cpus        atomic.Pointer[cpuSet]

	mu         sync.Mutex
	start, end cpuSample
	startCount int64
	started    chan struct{}
	ended      chan struct{}
}

var typeError = []byte("error")

func (s *outSink) messages(ids, types [][]byte) {
	fresh := int64(0)
	for i, id := range ids {
		if string(types[i]) == string(typeError) {
			s.errs.Add(1)
			continue
		}
		if s.ids.add(id) {
			fresh++
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

// Outbound measures n items (after warm ones) through the gateway.
func (e *Env) Outbound(run, n, warm int) (Result, error) {
	return e.outbound("outbound", "o", run, n, warm, e.startGateway)
}

const sentMetric = `xmppgw_outbound_items_total{result="sent"}`

func (e *Env) outbound(kind, letter string, run, n, warm int, start starter) (res Result, err error) {
	res = Result{Kind: kind, Run: run}
	q, err := e.newQueues(kind)
	if err != nil {
		return res, err
	}
	defer e.deleteQueues(q)
	total := n + warm
	prefix := fmt.Sprintf("%s%d.", letter, run)
	t0 := time.Now()
	if err := e.publishItems(q.out, prefix, total); err != nil {
		return res, err
	}
	e.opt.Logf("%s run %d: published %d items in %s", kind, run, total, time.Since(t0).Round(time.Millisecond))

	s := &outSink{ids: newIDSet(prefix, total), warm: int64(warm), total: int64(total),
		started: make(chan struct{}), ended: make(chan struct{})}
	setSinks(e.receivers, s)
	defer setSinks(e.receivers, nil)
	b, err := start(q)
	if err != nil {
		return res, err
	}
	defer b.stopAtEnd(&err)
	cpus := e.cpus(b.proc.pid())
	s.cpus.Store(cpus)
	perf := e.startPerf(kind, run, b.proc.pid())
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

	// Stop gracefully: anything not acknowledged would go back to the
	// queue.
	if err := b.proc.stop(60 * time.Second); err != nil {
		return res, err
	}
	err = e.checkOutbound(q, s, kind, run)
	return res, err
}

// waitArrived waits until the receivers have the last item, failing when
// nothing moves for opt.Stall or the bridge exits.
func (e *Env) waitArrived(s *outSink, p *process) error {
	last, lastAt := int64(-1), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.ended:
			return nil
		case <-p.done:
			return fmt.Errorf("%s exited; log:\n%s", p.name, tail(p.log, 4096))
		case <-tick.C:
			if g := s.got.Load(); g != last {
				last, lastAt = g, time.Now()
			} else if time.Since(lastAt) > e.opt.Stall {
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
