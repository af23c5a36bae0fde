package component

import (
	"encoding/xml"
	"errors"

	"mellium.im/xmlstream"
	mstanza "mellium.im/xmpp/stanza"

	"xmppgw/stanza"
)

// The roster (client mode, RFC 6121 §2).
//
// When the Inbound is a RosterInbound, a client session asks for the
// account's roster before its initial presence (RFC 6121 §2.2, which also
// makes it an "interested resource" that gets roster pushes). The answer is
// recognised by its id, derived from the barrier nonce that only the server
// learns, and accepted only from the server (no from), the account's bare
// JID or our own full JID. A roster push (an IQ set with a roster query) is
// accepted only without from or from the account's bare JID (RFC 6121
// §2.1.6) and answered with an empty result; a push from anybody else is
// ignored and answered like any IQ we do not serve (service-unavailable).
// Nothing here waits for a reply: the read loop delivers each one as it
// comes.

// RosterInbound is an Inbound that also takes the account's roster. Only
// client sessions whose Inbound implements it ask the server for the
// roster.
type RosterInbound interface {
	Inbound
	// Roster gets the whole roster (full: it replaces what was known) or
	// the items of one roster push. It is called on the session's read
	// goroutine, like the other methods, and must not block. items is the
	// callee's to keep.
	Roster(s *Session, full bool, items []stanza.RosterItem)
}

var rosterQuery = xml.Name{Space: stanza.NSRoster, Local: "query"}

// rosterInbound returns the Inbound as a RosterInbound in client mode.
func (s *Session) rosterInbound() (RosterInbound, bool) {
	if s.cfg.Mode != stanza.ModeClient {
		return nil, false
	}
	ri, ok := s.in.(RosterInbound)
	return ri, ok
}

// rosterID is the id of our roster get. It shares the barriers' secret
// nonce (the only other party to see it is the server, which sees those
// too); the suffix is not a number, so it is never taken for a barrier.
func (s *Session) rosterID() string { return s.idPrefix + "roster" }

// rosterGet is the roster request written before the initial presence, or
// nil when nobody takes the roster.
func (s *Session) rosterGet() []byte {
	if _, ok := s.rosterInbound(); !ok {
		return nil
	}
	return []byte(`<iq type='get' id='` + s.rosterID() + `'><query xmlns='` + stanza.NSRoster + `'/></iq>`)
}

// isRosterReply reports whether an IQ result or error answers our roster
// get.
func (s *Session) isRosterReply(id string) bool {
	if _, ok := s.rosterInbound(); !ok {
		return false
	}
	return id == s.rosterID()
}

// fromAccount reports whether from is the account itself: no from (the
// server, or the bare JID, which mellium blanks), the bare JID, or, when
// full is true, our own full JID.
func (s *Session) fromAccount(from string, full bool) bool {
	return from == "" || from == s.addr.Bare().String() || (full && from == s.self)
}

// rosterResult handles the answer to our roster get (start is the IQ).
func (s *Session) rosterResult(t xmlstream.TokenReadEncoder, start *xml.StartElement, typ string) error {
	ri, _ := s.rosterInbound()
	if from := getAttr(start, "from"); !s.fromAccount(from, true) {
		s.log.Debug("roster result from another entity ignored", "from", from)
		return nil
	}
	if typ == "error" {
		s.log.Warn("the server refused the roster: presence is tracked from anybody, within the caps")
		return nil
	}
	payload, err := firstChild(t)
	if err != nil {
		return err
	}
	if payload == nil || payload.Name != rosterQuery {
		// Only a roster-versioning client gets an empty result; we are none.
		s.log.Warn("roster result without a roster ignored")
		return nil
	}
	items, err := stanza.DecodeRoster(*payload, t)
	if err != nil {
		var de *stanza.DecodeError
		if !errors.As(err, &de) {
			return err
		}
		// Over the bounds: what was kept before them is the roster.
		s.log.Warn("roster over the limits: the rest is ignored", "items", len(items), "err", err)
	}
	s.log.Debug("roster received", "items", len(items))
	ri.Roster(s, true, items)
	return nil
}

// rosterPush handles an IQ set whose payload is a roster query. It returns
// false, having read nothing more, when the push is not for us to take:
// the caller then answers it like any IQ it does not serve.
func (s *Session) rosterPush(t xmlstream.TokenReadEncoder, iq mstanza.IQ, payload *xml.StartElement) (bool, error) {
	ri, ok := s.rosterInbound()
	if !ok {
		return false, nil
	}
	if from := iq.From.String(); !s.fromAccount(from, false) {
		s.log.Debug("roster push from another entity ignored", "from", from)
		return false, nil
	}
	items, err := stanza.DecodeRoster(*payload, t)
	if err != nil {
		var de *stanza.DecodeError
		if !errors.As(err, &de) {
			return true, err
		}
		s.log.Debug("refusing bad roster push", "condition", de.Condition, "err", err)
		return true, iqError(t, iq, mstanza.Modify, mstanza.Condition(de.Condition))
	}
	if len(items) > 0 {
		ri.Roster(s, false, items)
	}
	_, err = xmlstream.Copy(t, iq.Result(nil))
	return true, err
}
