package e2e

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// errSink counts the error stanzas a sender gets back (refused messages),
// and the other messages: the XEP-0184 receipts of a receipts run (the
// senders get nothing else).
type errSink struct{ errs, others atomic.Int64 }

func (s *errSink) messages(_, types [][]byte) {
	for _, t := range types {
		if string(t) == string(typeError) {
			s.errs.Add(1)
		} else {
			s.others.Add(1)
		}
	}
}

// Inbound measures n events (after warm ones) through the gateway.
func (e *Env) Inbound(run, n, warm int) (Result, error) {
	return e.inbound(inRun{kind: "inbound", letter: "i", start: e.gateway(e.opt.Prefetch)}, run, n, warm)
}

// InboundReceipts is Inbound with every message asking for a XEP-0184
// receipt, which the gateway sends once the broker confirmed its event:
// what receipts cost the gateway and the server. Every queued event must
// have had its receipt.
func (e *Env) InboundReceipts(run, n, warm int) (Result, error) {
	e.receipts = true
	defer func() { e.receipts = false }()
	return e.inbound(inRun{kind: "inbound-receipts", letter: "r", start: e.gateway(e.opt.Prefetch)}, run, n, warm)
}

// appendInMessage appends the message with id prefix+i that a sender
// sends to target.
func (e *Env) appendInMessage(buf []byte, target, prefix string, i int) []byte {
	buf = append(buf, "<message type='chat' to='"...)
	buf = append(buf, target...)
	buf = append(buf, "' id='"...)
	buf = append(buf, prefix...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, "'><body>Hello, this is customer message number "...)
	buf = strconv.AppendInt(buf, int64(100000+i), 10)
	buf = append(buf, ", asking about the order I placed on Monday morning.</body>"...)
	if e.receipts {
		buf = append(buf, "<request xmlns='urn:xmpp:receipts'/>"...)
	}
	return append(buf, "</message>"...)
}

// send makes the senders send the messages with ids prefix+[from, to) to
// notices@<component>, each sender a share, in big writes, as fast as
// Prosody reads them.
func (e *Env) send(prefix string, from, to int) error {
	target := "notices@" + e.Prosody.ComponentDomain
	var wg sync.WaitGroup
	errs := make(chan error, len(e.senders))
	for k, c := range e.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 80<<10)
			for i := from + k; i < to; i += len(e.senders) {
				buf = e.appendInMessage(buf, target, prefix, i)
				if len(buf) >= 64<<10 {
					if err := c.write(buf); err != nil {
						errs <- err
						return
					}
					buf = buf[:0]
				}
			}
			if len(buf) > 0 {
				if err := c.write(buf); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// inRun says what an inbound measurement runs.
type inRun struct {
	kind, letter string
	start        starter
	// raw: the component counts what it reads and queues nothing (its
	// counters are read instead of the in queue).
	raw bool
	// window, if set, marks the measured window (ServerCost): on once the
	// warm events are queued, before the others are sent; off once they
	// are all queued.
	window *window
}

// inbound starts the bridge, sends warm+n messages and measures the window
// from the end of the warm-up until the last event is queued (or, raw,
// read).
func (e *Env) inbound(o inRun, run, n, warm int) (res Result, err error) {
	kind := o.kind
	res = Result{Kind: kind, Run: run}
	q, err := e.newQueues(kind)
	if err != nil {
		return res, err
	}
	defer e.deleteQueues(q)
	total := n + warm
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
	cpus := e.cpus(b.proc.pid())
	ch, err := e.conn.Channel()
	if err != nil {
		return res, err
	}
	defer ch.Close()
	var w waiter = &inQueueWaiter{ch: ch, q: q.in, refused: &s.errs, proc: b.proc, stall: e.opt.Stall}
	if o.raw {
		w = &countWaiter{httpAddr: b.httpAddr, proc: b.proc, stall: e.opt.Stall}
	}
	if err := e.inboundWindow(&res, w, o.window, b.proc.pid(), cpus, kind, prefix, run, warm, total); err != nil {
		return res, err
	}
	res.Errors = s.errs.Load()
	e.inboundMetrics(&res, b.httpAddr, kind, run)
	if e.receipts {
		// The receipts of the last events may still be on their way.
		want := int64(total) - res.Errors
		for deadline := time.Now().Add(e.opt.Stall); s.others.Load() < want && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if got := s.others.Load(); got != want {
			return res, fmt.Errorf("%d receipts for %d queued events", got, want)
		}
	}
	var rawErr error
	if o.raw {
		rawErr = e.checkRawIn(&res, b.httpAddr, total) // its counters go with it
	}
	if err := b.finish(&res); err != nil {
		return res, err
	}
	if o.raw {
		return res, rawErr
	}
	err = e.checkInbound(&res, ch, q.in, kind, prefix, run, total)
	return res, err
}

// inboundWindow sends the warm events and waits until they are queued,
// then measures sending the rest until they are all queued: the items, time
// and CPU of the window go into res.
func (e *Env) inboundWindow(res *Result, w waiter, win *window, pid int, cpus *cpuSet, kind, prefix string, run, warm, total int) error {
	q0 := 0
	if warm > 0 {
		if err := e.send(prefix, 0, warm); err != nil {
			return err
		}
		var err error
		if q0, err = w.wait(warm); err != nil {
			return err
		}
	}
	if win != nil {
		if warm < 1 {
			return errors.New("a measured window needs a warm-up")
		}
		if err := win.on(); err != nil {
			return err
		}
	}
	perf := e.startPerf(kind, run, pid)
	a := cpus.sample()
	sendErr := make(chan error, 1)
	go func() { sendErr <- e.send(prefix, warm, total) }()
	q1, err := w.wait(total)
	if err != nil {
		return err
	}
	z := cpus.sample()
	perf.stop(e)
	counted := 0.0
	if win != nil {
		if counted, err = win.off(); err != nil {
			return err
		}
	}
	if err := <-sendErr; err != nil {
		return err
	}
	// Events queued in the window (refused ones are not items moved).
	res.Items = q1 - q0
	e.fill(res, cpus, a, z)
	if win != nil && res.Items > 0 {
		res.ProsodyInstr = counted / float64(res.Items)
	}
	return nil
}

// waiter waits until the bridge has moved want events in all, and says
// how many it has.
type waiter interface {
	wait(want int) (int, error)
}

// inQueueWaiter polls the in queue of a run.
type inQueueWaiter struct {
	ch      *amqp.Channel
	q       string
	refused *atomic.Int64 // error stanzas the senders got
	proc    *process      // the bridge
	stall   time.Duration
}

// wait polls the queue until it holds want events (or want minus the
// refused ones), failing when nothing moves for stall.
func (w *inQueueWaiter) wait(want int) (int, error) {
	pr := newProgress(w.stall)
	for {
		got, err := queueLen(w.ch, w.q)
		if err != nil {
			return got, err
		}
		if got+int(w.refused.Load()) >= want {
			return got, nil
		}
		if w.proc.exited() {
			return got, fmt.Errorf("%s exited; log:\n%s", w.proc.name, tail(w.proc.log, 4096))
		}
		if pr.stalled(int64(got)) {
			return got, fmt.Errorf("no progress for %s: %d of %d events in %s (%d refused)", w.stall, got, want, w.q, w.refused.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countWaiter polls the counter of the raw-in component.
type countWaiter struct {
	httpAddr string
	proc     *process
	stall    time.Duration
}

func (w *countWaiter) wait(want int) (int, error) {
	pr := newProgress(w.stall)
	for {
		m, err := scrape(w.httpAddr)
		if err != nil {
			return 0, err
		}
		got := int(sumMetric(m, "xmppgw_inbound_events_total"))
		if got >= want {
			return got, nil
		}
		if w.proc.exited() {
			return got, fmt.Errorf("%s exited; log:\n%s", w.proc.name, tail(w.proc.log, 4096))
		}
		if pr.stalled(int64(got)) {
			return got, fmt.Errorf("no progress for %s: %d of %d messages read", w.stall, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkRawIn checks that the raw-in component read every message once.
func (e *Env) checkRawIn(res *Result, httpAddr string, total int) error {
	m, err := scrape(httpAddr)
	if err != nil {
		return err
	}
	res.Dups = int64(m[rawDupsMetric])
	res.Missing = total - int(sumMetric(m, "xmppgw_inbound_events_total"))
	if res.Missing > 0 {
		return fmt.Errorf("%w: %d messages not read by the raw component", ErrLost, res.Missing)
	}
	if stray := m[rawStrayMetric]; stray > 0 {
		e.opt.Logf("%s run %d: %v messages with unexpected ids", res.Kind, res.Run, stray)
	}
	return nil
}

// inboundMetrics reads the bridge's counters of refused and published
// events into res, logging each reason for refusal.
func (e *Env) inboundMetrics(res *Result, httpAddr, kind string, run int) {
	m, err := scrape(httpAddr)
	if err != nil {
		return
	}
	res.Refused = sumMetric(m, "xmppgw_inbound_refused_total")
	res.Metrics = sumMetric(m, "xmppgw_inbound_events_total")
	for k, v := range m {
		if v != 0 && strings.HasPrefix(k, "xmppgw_inbound_refused_total{") {
			e.opt.Logf("%s run %d: %s %v", kind, run, k, v)
		}
	}
}

// checkInbound drains the in queue q: every event must be in it once (or
// have been refused, which the table shows).
func (e *Env) checkInbound(res *Result, ch *amqp.Channel, q, kind, prefix string, run, total int) error {
	ids := newIDSet(prefix, total)
	if err := drainIDs(ch, q, ids, total); err != nil {
		return err
	}
	res.Dups = ids.dups.Load()
	missing, some := ids.missing(20)
	res.Missing = missing
	if int64(missing) > res.Errors || (res.Refused > 0 && float64(missing) > res.Refused) {
		return fmt.Errorf("%w: %d events missing from %s, %d refused (error stanzas %d), e.g. %v", ErrLost, missing, q, int(res.Refused), res.Errors, some)
	}
	if missing > 0 || res.Refused > 0 {
		e.opt.Logf("WARNING %s run %d: %d events refused (senders got %d error stanzas)", kind, run, missing, res.Errors)
	}
	return nil
}

// drainIDs consumes the queue and records the "id" of every event.
func drainIDs(ch *amqp.Channel, q string, ids *idSet, want int) error {
	if err := ch.Qos(5000, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(q, "bench-drain", true, false, false, false, nil)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Cancel("bench-drain", false) }()
	got := 0
	for got < want {
		select {
		case d := <-ds:
			got++
			ids.add(jsonString(d.Body, "id"))
		case <-time.After(2 * time.Second):
			return nil
		}
	}
	return nil
}
