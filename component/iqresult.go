package component

import (
	"encoding/xml"
	"errors"

	"mellium.im/xmlstream"

	"xmppgw/stanza"
)

// IQResultInbound is an Inbound that also takes the answers to IQs the
// gateway sent itself (other than barriers and the roster request), such
// as XEP-0410 self-pings of rooms.
type IQResultInbound interface {
	Inbound
	// IQResult gets an IQ of type result or error: its id, from, type and,
	// for an error, the defined condition. It runs on the read loop and must
	// not block.
	IQResult(s *Session, id, from, typ, condition string)
}

// iqResult hands an IQ result or error to the Inbound when it takes them,
// reading the element to its end (bounded like a message) to find an
// error's condition.
func (s *Session) iqResult(t xmlstream.TokenReadEncoder, start *xml.StartElement, id, typ string) error {
	ri, ok := s.in.(IQResultInbound)
	if !ok {
		return nil
	}
	// DecodeMessage reads any stanza's children: for type='error' its
	// Condition is the error's.
	ev, err := stanza.DecodeMessage(*start, t, s.cfg.Limits)
	if err != nil {
		var de *stanza.DecodeError
		if !errors.As(err, &de) {
			return err
		}
	}
	ri.IQResult(s, id, getAttr(start, "from"), typ, ev.Condition)
	return nil
}
