package presence

import (
	"errors"

	"xmppgw/stanza"
)

// presenceDeferMax bounds the changes that wait for an unavailable store.
// Past it a contact's subscribe is answered with a temporary error (type
// wait: the contact may ask again), other changes are dropped and counted
// in xmppgw_presence_dropped_total.
const presenceDeferMax = 1024

// deferJob keeps j until the store is back, or refuses it when too many
// wait. A subscribe that waits is not answered yet: it is approved (or
// refused) only once its outcome is stored.
func (p *Service) deferJob(j *presJob) {
	if len(p.deferred) < presenceDeferMax {
		if len(p.deferred) == 0 {
			p.log.Warn("presence store unavailable: subscription changes wait until it is back", "limit", presenceDeferMax)
		}
		p.deferred = append(p.deferred, *j)
		return
	}
	p.m.PresenceDropped.Inc()
	if p.warn.OK() {
		p.log.Warn("presence store unavailable and too many changes waiting: change refused", "type", j.pr.Type, "waiting", len(p.deferred))
	}
	if j.op != opInbound || j.pr.Type != "subscribe" {
		return
	}
	a, ok := p.parse(&j.pr)
	if !ok {
		return
	}
	b := appendPresenceError(p.buf[:0], a.local, j.pr.From, j.pr.ID, "wait", "resource-constraint")
	p.write(j.w, b)
	p.buf = b[:0]
}

// replay runs the jobs that waited for the store, in order, while it is
// available; a job that finds it gone again waits again at the head.
func (p *Service) replay() {
	if len(p.deferred) == 0 || !p.st.available() {
		return
	}
	n := 0
	for len(p.deferred) > 0 {
		j := p.deferred[0]
		if w := p.opt.Session(); w != nil {
			j.w = w // the session the job came on may be gone
		}
		err := p.run(&j)
		if errors.Is(err, ErrStoreUnavailable) {
			break
		}
		p.deferred[0] = presJob{}
		p.deferred = p.deferred[1:]
		n++
		p.storeError(&j, err)
	}
	if len(p.deferred) == 0 {
		p.deferred = nil
	}
	p.countSubscribers() // the store re-read every row when it came back
	p.log.Info("presence store back: waiting changes applied", "applied", n, "still_waiting", len(p.deferred))
}

// appendPresenceError appends a presence error reply with a defined
// condition of RFC 6120 §8.3.3.
func appendPresenceError(b []byte, from, to, id, errType, condition string) []byte {
	b = stanza.AppendPresence(b, from, to, id, "error", "", "")
	b = b[:len(b)-len("/>")]
	b = append(b, "><error type='"...)
	b = append(b, errType...)
	b = append(b, "'><"...)
	b = append(b, condition...)
	b = append(b, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"...)
	return b
}
