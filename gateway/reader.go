package gateway

import (
	"xmppgw/component"
	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// reader takes what the XMPP read loop delivers (component.Inbound and,
// in client mode, component.RosterInbound). Every method runs on the read
// loop and never blocks, except Message while the inbound buffer is full
// and the broker still confirms (backpressure: see inbound.offerWait).
type reader struct{ g *Gateway }

var (
	_ component.Inbound         = reader{}
	_ component.RosterInbound   = reader{}
	_ component.IQResultInbound = reader{}
)

// Message queues a message event, a bounce of ours, or a receipt for one
// of ours.
func (r reader) Message(s *component.Session, ev *stanza.Event) {
	if !r.g.muc.Message(ev) {
		return // a room's echo of ours, its history, or not a mention
	}
	switch ev.Kind {
	case "error":
		r.g.metrics.Bounces.WithLabelValues(metrics.ConditionLabel(ev.Condition)).Inc()
	case "receipt":
		r.g.receipt(s, ev)
		return
	}
	r.g.in.offer(s, ev)
}

// Presence hands a presence stanza to the presence worker.
func (r reader) Presence(s *component.Session, pr *stanza.Presence) {
	if r.g.muc.Presence(pr) {
		return // from one of our rooms: never a contact's
	}
	r.g.pres.Offer(s, pr)
}

// IQResult hands the answers to the rooms' self-pings to the room manager.
func (r reader) IQResult(_ *component.Session, id, from, typ, cond string) {
	r.g.muc.IQResult(id, from, typ, cond)
}

// Roster hands the account's roster, or a push, to the presence worker.
func (r reader) Roster(_ *component.Session, full bool, items []stanza.RosterItem) {
	r.g.pres.Roster(full, items)
}
