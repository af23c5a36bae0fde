package e2e

import "time"

// bridge is what carries the items: the gateway or the baseline bridge.
type bridge struct {
	proc     *process
	httpAddr string // its /metrics
}

// starter starts a bridge on the queues of one run.
type starter func(q queues) (*bridge, error)

// stopAtEnd stops the bridge unless it has exited already, setting *err to
// why the stop failed if *err is nil. Deferred by a measurement.
func (b *bridge) stopAtEnd(err *error) {
	if b.proc.exited() {
		return
	}
	if serr := b.proc.stop(60 * time.Second); serr != nil && *err == nil {
		*err = serr
	}
}

// finish records the bridge's peak RSS in res and stops it gracefully: an
// outbound bridge acknowledges what it sent (anything else goes back to the
// queue), an inbound one publishes what it read. The end of a measurement.
func (b *bridge) finish(res *Result) error {
	res.PeakRSS = peakRSS(b.proc.pid())
	return b.proc.stop(60 * time.Second)
}

// launch points clients at the run's sink s and starts a bridge on q. The
// caller defers end, which stops the bridge (its error into *err unless
// there is one already) and then detaches the sink.
func launch(clients []*rawClient, s sink, start starter, q queues) (b *bridge, end func(err *error), err error) {
	setSinks(clients, s)
	b, err = start(q)
	if err != nil {
		setSinks(clients, nil)
		return nil, nil, err
	}
	return b, func(err *error) {
		b.stopAtEnd(err)
		setSinks(clients, nil)
	}, nil
}

// setSinks makes s the sink of the clients cs (nil: none).
func setSinks(cs []*rawClient, s sink) {
	for _, c := range cs {
		c.setSink(s)
	}
}
