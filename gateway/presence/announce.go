package presence

import (
	"time"

	"xmppgw/stanza"
)

// presenceWriteChunk is the size at which batched presence bytes are
// written.
const presenceWriteChunk = 32 << 10

// announce sends available presence (with the current status) from each
// local JID to its subscribers, and with probe set a probe to each contact
// that approved our subscription.
func (p *Service) announce(w Writer, probe bool) {
	status := p.opt.Settings().Status
	b := p.buf[:0]
	n := 0
	err := p.st.eachSubscriber(func(local, contact string) error {
		b = stanza.AppendPresence(b, local, contact, "", "available", "", status)
		n++
		return p.maybeWrite(w, &b)
	})
	m := 0
	if err == nil && probe {
		err = p.st.eachSubscription(func(local, contact string, st subState) error {
			if st != subApproved {
				return nil
			}
			m++
			b = stanza.AppendPresence(b, local, contact, "", "probe", "", "")
			return p.maybeWrite(w, &b)
		})
	}
	if err == nil {
		err = w.Write(b)
	}
	p.buf = b[:0]
	if err != nil {
		p.log.Warn("announcing presence", "err", err)
		return
	}
	p.log.Info("presence announced", "subscribers", n, "probes", m)
}

func (p *Service) maybeWrite(w Writer, b *[]byte) error {
	if len(*b) < presenceWriteChunk {
		return nil
	}
	err := w.Write(*b)
	*b = (*b)[:0]
	return err
}

// sayGoodbye writes unavailable from each local JID to its subscribers and
// waits until the server answered a barrier written after them.
func (p *Service) sayGoodbye(w Writer) {
	p.gone = true
	b := p.buf[:0]
	n := 0
	err := p.st.eachSubscriber(func(local, contact string) error {
		b = stanza.AppendPresence(b, local, contact, "", "unavailable", "", "")
		n++
		return p.maybeWrite(w, &b)
	})
	var seq uint64
	if err == nil {
		seq, err = w.WriteWithBarrier(b)
	}
	p.buf = b[:0]
	if err != nil {
		p.log.Warn("goodbye", "err", err)
		return
	}
	deadline := time.NewTimer(goodbyeTimeout)
	defer deadline.Stop()
	for w.Confirmed() < seq {
		select {
		case <-w.Notify():
		case <-deadline.C:
			p.log.Warn("goodbye not confirmed by the server", "subscribers", n)
			return
		}
	}
	p.log.Info("unavailable presence sent", "subscribers", n)
}
