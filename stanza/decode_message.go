package stanza

import (
	"encoding/json"
	"encoding/xml"
	"unicode/utf8"
)

// DecodeMessage reads the rest of one <message/> whose start element has
// been read: r yields the children and the end element (the shape mellium's
// xmpp.Handler gives). It always consumes the element to its end, buffering
// no more than the limits, so the stream stays usable.
//
// The event has Kind "error" when type='error' (Condition is the local name
// of the first child of <error> in urn:ietf:params:xml:ns:xmpp-stanzas, Text
// its <text>), "message" when it has a <body> (in the stanza's namespace or
// none; the first one counts) or an XEP-0335 <json xmlns='urn:xmpp:json:0'>
// payload, and "" (not an event) otherwise, e.g. chat states. Type defaults
// to "normal" (also for unknown types, RFC 6121 §5.2.2); ID is the stanza's
// id or "".
//
// A refused stanza yields a *DecodeError (bad-request, policy-violation for
// sizes and depth over the limits and an id over MaxInIDBytes, jid-malformed
// for an address over MaxInJIDBytes, not-acceptable for an invalid JSON
// payload) together with an Event holding From, To, ID and Type so the
// caller can address the error reply. An error of the reader is returned
// wrapped (ErrUnexpectedEOF at end of input): the stream is then unusable.
func DecodeMessage(start xml.StartElement, r xml.TokenReader, lim Limits) (Event, error) {
	var ev Event
	ev.From, ev.To, ev.ID, ev.Type = attrs(&start)
	switch ev.Type {
	case "chat", "error", "groupchat", "headline", "normal":
	default:
		ev.Type = "normal"
	}
	m := messageReader{stanzaReader: stanzaReader{r: r, lim: lim.withDefaults(), depth: 1}, ns: start.Name.Space}
	m.checkAttrs(ev.From, ev.To, ev.ID)
	for m.depth > 0 {
		tok, err := m.next("message")
		if err != nil {
			ev.Condition = m.cond
			return ev, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			m.start(t.Name)
		case xml.EndElement:
			m.end()
		case xml.CharData:
			m.text(t)
		}
	}
	ev.Condition = m.cond
	if m.derr != nil {
		return ev, m.derr
	}
	// not `return ev, m.complete(&ev)`: the order in which ev is read and
	// complete writes it would be unspecified
	err := m.complete(&ev)
	return ev, err
}

// messageReader collects what DecodeMessage keeps of a message: the first
// body, subject, thread, JSON payload and error among its children, and the
// first condition and text of that error.
type messageReader struct {
	stanzaReader
	ns   string // the stanza's namespace
	seen kinds  // the kinds of children met
	cur  int    // kind of the child open at depth 2; cNone: not collected
	cur3 int    // kind of the grandchild open at depth 3

	body, subject, thread, payload, errText []byte
	cond                                    string // the error's condition
	haveCond                                bool
}

// start notes the kind of an element just opened at m.depth.
func (m *messageReader) start(n xml.Name) {
	switch m.depth {
	case 2:
		m.cur = m.seen.first(m.childKind(n))
	case 3:
		m.cur3 = cNone
		if m.cur == cError && n.Space == nsStanzas {
			m.errorChild(n.Local)
		}
	}
}

// childKind returns the kind of a child of the stanza named n.
func (m *messageReader) childKind(n xml.Name) int {
	switch {
	case n.Space == nsJSON && n.Local == "json":
		return cJSON
	case !streamish(n.Space, m.ns):
		return cNone
	case n.Local == "body":
		return cBody
	case n.Local == "subject":
		return cSubject
	case n.Local == "thread":
		return cThread
	case n.Local == "error":
		return cError
	}
	return cNone
}

// errorChild notes a child of <error> in the stanzas namespace: its first
// <text> is collected, the name of its first other child is the condition.
func (m *messageReader) errorChild(local string) {
	if local == "text" {
		if m.errText == nil {
			m.cur3, m.errText = cErrText, []byte{}
		}
	} else if !m.haveCond {
		m.haveCond, m.cond = true, local
	}
}

// end notes that the element open at m.depth+1 has ended.
func (m *messageReader) end() {
	switch m.depth {
	case 1:
		m.cur = cNone
	case 2:
		m.cur3 = cNone
	}
}

// text collects character data of a child being collected, within bounds.
func (m *messageReader) text(t xml.CharData) {
	switch {
	case m.depth == 2 && m.cur == cBody:
		m.grow(&m.body, t, m.lim.MaxTextBytes, "body")
	case m.depth == 2 && m.cur == cSubject:
		m.grow(&m.subject, t, m.lim.MaxTextBytes, "subject")
	case m.depth == 2 && m.cur == cThread:
		m.grow(&m.thread, t, m.lim.MaxTextBytes, "thread")
	case m.depth == 2 && m.cur == cJSON:
		m.grow(&m.payload, t, m.lim.MaxPayloadBytes, "JSON payload")
	case m.depth == 3 && m.cur3 == cErrText:
		m.grow(&m.errText, t, m.lim.MaxTextBytes, "error text")
	}
}

// complete fills in the event of a message read without error: an error
// event, a message event, or none (Kind "").
func (m *messageReader) complete(ev *Event) error {
	if ev.Type == "error" {
		ev.Kind = "error"
		ev.Text = ownedString(m.errText)
		return nil
	}
	if m.seen.has(cJSON) {
		// json.Valid does not check UTF-8; the event must be UTF-8 JSON
		// whatever token reader fed us.
		if !json.Valid(m.payload) || !utf8.Valid(m.payload) {
			return decodeErr("not-acceptable", "the JSON payload is not valid JSON")
		}
		ev.Payload = json.RawMessage(m.payload)
	}
	if !m.seen.has(cBody) && !m.seen.has(cJSON) {
		return nil
	}
	ev.Kind = "message"
	ev.Text = ownedString(m.body)
	ev.Subject = ownedString(m.subject)
	ev.Thread = ownedString(m.thread)
	return nil
}
