package component

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/ping"
	mstanza "mellium.im/xmpp/stanza"
	"mellium.im/xmpp/version"

	"xmppgw/stanza"
)

// newMux builds the IQ handlers: disco#info/#items, XEP-0199 ping and XEP-0092
// version. Everything else gets service-unavailable (see handleIQ).
func newMux(ns string, ident info.Identity, ver string) *mux.ServeMux {
	return mux.New(ns,
		disco.Handle(),
		ping.Handle(),
		version.Handle(version.Query{Name: "xmppgw", Version: ver}),
		// disco lists its own and ping's features, not version's.
		mux.Feature(features{version.Feature}),
		mux.Ident(identities{ident}),
	)
}

type features []info.Feature

func (fs features) ForFeatures(node string, f func(info.Feature) error) error {
	if node != "" {
		return nil
	}
	for _, x := range fs {
		if err := f(x); err != nil {
			return err
		}
	}
	return nil
}

type identities []info.Identity

func (is identities) ForIdentities(node string, f func(info.Identity) error) error {
	if node != "" {
		return nil
	}
	for _, x := range is {
		if err := f(x); err != nil {
			return err
		}
	}
	return nil
}

// handle is the handler of one top-level element, called by mellium's Serve
// (client mode) or by our read loop's token path (component mode); it runs
// on the read goroutine. It must never wait for anything that the read
// loop itself would have to read. Both loops consume whatever the handler
// leaves of the element, so the stream stays in sync. Returning an error
// ends the stream: only stream-level failures (read/write errors, bad
// XML) do.
//
// A panic while handling one stanza (a bug, or input nobody foresaw) ends
// this session with an error instead of the process: the gateway
// reconnects and the broker redelivers whatever was not confirmed.
func (s *Session) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic while handling a stanza; ending the session", "stanza", start.Name.Local, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("component: panic while handling <%s/>: %v", start.Name.Local, r)
		}
	}()
	s.lastRead.Store(s.now())
	if start.Name.Space != s.ns {
		return nil
	}
	switch start.Name.Local {
	case "iq":
		return s.handleIQ(t, start)
	case "message":
		return s.handleMessage(t, start)
	case "presence":
		return s.handlePresence(t, start)
	}
	return nil
}

func getAttr(start *xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func (s *Session) handleIQ(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	id, typ := getAttr(start, "id"), getAttr(start, "type")
	switch typ {
	case "result", "error":
		if s.isRosterReply(id) {
			return s.rosterResult(t, start, typ)
		}
		// An answer to one of our barriers (result from the server, or an
		// error such as service-unavailable: either proves the server
		// processed everything before the ping). Only the entity the ping
		// went to may answer it: anyone else could otherwise ack items the
		// server never received. A stanza without from comes from the
		// server itself.
		if from := getAttr(start, "from"); from == "" || from == s.pingTo {
			if seq, ok := s.barrierSeq(id); ok {
				s.confirm(seq)
				return nil
			}
		}
		return s.iqResult(t, start, id, typ)
	case "get", "set":
	default:
		return nil
	}
	if typ == "get" {
		// Component mode: our barrier pings go from our domain to our domain,
		// so the server routes them back to us on this stream, in order.
		// Serve blanks a from equal to our own bare address.
		if from := getAttr(start, "from"); from == "" || from == s.self {
			if seq, ok := s.barrierSeq(id); ok {
				s.confirm(seq)
				return nil
			}
		}
	}

	iq, err := mstanza.NewIQ(*start)
	if err != nil {
		// Unparsable to/from: the server would not have routed it; nobody to
		// answer reliably.
		s.log.Debug("dropping iq with bad address", "err", err)
		return nil
	}
	payload, err := firstChild(t)
	if err != nil {
		return err
	}
	if payload == nil {
		return iqError(t, iq, mstanza.Modify, mstanza.BadRequest)
	}
	if iq.Type == mstanza.SetIQ && payload.Name == rosterQuery {
		if ok, err := s.rosterPush(t, iq, payload); ok {
			return err
		}
	}
	h, ok := s.mux.IQHandler(iq.Type, payload.Name)
	if !ok {
		return iqError(t, iq, mstanza.Cancel, mstanza.ServiceUnavailable)
	}
	return h.HandleIQ(iq, t, payload)
}

// firstChild returns the IQ's payload start element, nil if it has none.
func firstChild(r xml.TokenReader) (*xml.StartElement, error) {
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			el = el.Copy()
			return &el, nil
		case xml.EndElement:
			return nil, nil
		}
	}
}

func iqError(w xmlstream.TokenWriter, iq mstanza.IQ, typ mstanza.ErrorType, cond mstanza.Condition) error {
	iq.To, iq.From = iq.From, iq.To
	iq.Type = mstanza.ErrorIQ
	_, err := xmlstream.Copy(w, iq.Wrap(mstanza.Error{Type: typ, Condition: cond}.TokenReader()))
	return err
}

func (s *Session) handleMessage(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	ev, err := stanza.DecodeMessage(*start, t, s.cfg.Limits)
	if err != nil {
		var de *stanza.DecodeError
		if !errors.As(err, &de) {
			return err
		}
		s.log.Debug("refusing bad message", "condition", de.Condition, "err", err)
		// Never answer an error with an error, nor reply to nobody.
		from := getAttr(start, "from")
		if getAttr(start, "type") == "error" || from == "" {
			return nil
		}
		orig := stanza.Event{ID: getAttr(start, "id"), From: from, To: getAttr(start, "to")}
		s.ebuf = stanza.AppendMessageError(s.ebuf[:0], &orig, "modify", de.Condition, "")
		if err := s.Write(s.ebuf); err != nil {
			s.log.Debug("could not send stanza error", "err", err)
		}
		return nil
	}
	s.deliverMessage(&ev)
	return nil
}

// deliverMessage hands a decoded message to the Inbound: events only (no
// body, no payload: chat states, ... are dropped), with ReceivedAt and an
// ID.
func (s *Session) deliverMessage(ev *stanza.Event) {
	if ev.Kind == "" {
		return
	}
	ev.ReceivedAt = time.Now().UTC()
	if ev.ID == "" {
		s.inSeq++
		ev.ID = s.evPrefix + strconv.FormatUint(s.inSeq, 10)
	}
	s.ev = *ev
	s.in.Message(s, &s.ev)
}

func (s *Session) handlePresence(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	p, err := stanza.DecodePresence(*start, t, s.cfg.Limits)
	if err != nil {
		var de *stanza.DecodeError
		if !errors.As(err, &de) {
			return err
		}
		s.log.Debug("dropping bad presence", "condition", de.Condition, "err", err)
		return nil
	}
	s.in.Presence(s, &p)
	return nil
}
