package gateway

// When the pipe writes its batch and when a barrier (a ping whose answer
// acknowledges everything written before it) goes with it.

import "time"

// flush writes the batch. The open batch gets its barrier when enough
// items went out without one, while draining, or when none is in flight
// and its first item has waited barrierDelay; otherwise its items ride on
// the next barrier. So a stream at full speed has about one ping per round
// trip and a trickle one per barrierDelay, never one per write: every ping
// is a stanza the XMPP server must route, as much work for it as a message.
func (p *pipe) flush() error {
	o := p.o
	p.taken = 0
	if o.open.empty() {
		return nil
	}
	if p.barrierDue(time.Now()) {
		return p.barrier()
	}
	err := p.sess.Write(o.buf)
	o.buf = o.buf[:0]
	o.g.metrics.OutboundInFlight.Set(float64(p.inFlight()))
	return err
}

// barrierDelay is how long items written while no barrier is in flight
// wait for more before their barrier goes out (outbound.barrierDelay; tests
// change it). It delays only their acknowledgement (the broker keeps them
// unacked that much longer), never their delivery: they are written at
// once.
const barrierDelay = 10 * time.Millisecond

// barrierDue reports whether the open batch needs its barrier now, and
// arms the lull timer when it will need one later.
func (p *pipe) barrierDue(now time.Time) bool {
	o := p.o
	if o.open.items() >= p.barrierEvery || p.draining {
		return true
	}
	if len(o.pending) > 0 {
		return false // rides on the next one
	}
	wait := o.barrierDelay - now.Sub(o.open.opened)
	if wait <= 0 {
		return true
	}
	if !p.lullSet {
		p.lull.Reset(wait)
		p.lullSet = true
	}
	return false
}

// lulled handles the lull timer: the open batch's barrier is due if none
// is in flight.
func (p *pipe) lulled() error {
	p.lullSet = false
	o := p.o
	if len(o.pending) > 0 || o.open.empty() {
		return nil
	}
	if len(o.buf) > 0 {
		return nil // being built: flush decides
	}
	if p.barrierDue(time.Now()) {
		return p.barrier()
	}
	return nil
}

// barrier writes the buffer (possibly empty) and a ping, and moves the open
// batch to pending.
func (p *pipe) barrier() error {
	o := p.o
	seq, err := p.sess.WriteWithBarrier(o.buf)
	o.buf = o.buf[:0]
	if err != nil {
		return err
	}
	o.open.seq = seq
	o.pending = append(o.pending, o.open)
	o.open = o.newBatch()
	o.g.metrics.OutboundInFlight.Set(float64(p.inFlight()))
	return nil
}

func (p *pipe) inFlight() int {
	n := p.o.open.items()
	for _, b := range p.o.pending {
		n += b.items()
	}
	return n
}
