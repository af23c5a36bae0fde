package stanza

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
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
	ev.Type = messageType(ev.Type)
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
			m.start(&t)
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

// messageType is the event type of a message whose type attribute is typ:
// the type itself (a constant string) when it is one of RFC 6121's,
// "normal" otherwise (§5.2.2).
func messageType(typ string) string {
	switch typ {
	case "chat":
		return "chat"
	case "error":
		return "error"
	case "groupchat":
		return "groupchat"
	case "headline":
		return "headline"
	}
	return "normal"
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
	haveErrText                             bool // errText is being or was collected

	receiptID, receiptStatus string // the first XEP-0184 receipt or XEP-0333 marker
	replace                  string // the XEP-0308 correction's id
	encrypted                string // "omemo" or "openpgp"
	encPayload               bool   // the OMEMO element has a <payload/>: a message, not key transport
	stanzaID, stanzaIDBy     string // the first XEP-0359 stanza-id
}

// start notes the kind of an element just opened at m.depth.
func (m *messageReader) start(t *xml.StartElement) {
	switch m.depth {
	case 2:
		m.cur = m.seen.first(m.childKind(t.Name))
		m.extension(t)
	case 3:
		m.cur3 = cNone
		if m.cur == cError && t.Name.Space == nsStanzas {
			m.errorChild(t.Name.Local)
		}
		if m.cur == cEncrypted && t.Name.Local == "payload" {
			m.encPayload = true
		}
	}
}

// extension reads the child of a message that opened a delivery extension
// (m.cur, the first of its kind): a receipt or marker, a correction, an
// encrypted message.
func (m *messageReader) extension(t *xml.StartElement) {
	switch m.cur {
	case cReceipt:
		if id := attrID(t); id != "" && len(id) <= MaxInIDBytes {
			m.receiptID, m.receiptStatus = id, t.Name.Local // received, displayed, acknowledged
		}
	case cReplace:
		m.replace = attrID(t)
		if len(m.replace) > MaxInIDBytes {
			m.setErr("policy-violation", fmt.Sprintf("the id of the correction is over the limit of %d bytes", MaxInIDBytes))
		}
	case cStanzaID:
		id, by := attrID(t), ""
		for _, a := range t.Attr {
			if a.Name.Space == "" && a.Name.Local == "by" {
				by = a.Value
			}
		}
		if len(id) <= MaxInIDBytes && len(by) <= MaxInJIDBytes {
			m.stanzaID, m.stanzaIDBy = id, by
		}
	case cEncrypted:
		m.encrypted = "openpgp"
		if t.Name.Space == nsOMEMO1 || t.Name.Space == nsOMEMO2 {
			m.encrypted = "omemo"
		}
	}
}

// attrID returns the id attribute (in no namespace) of t.
func attrID(t *xml.StartElement) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == "id" {
			return a.Value
		}
	}
	return ""
}

// childKind returns the kind of a child of the stanza named n.
func (m *messageReader) childKind(n xml.Name) int {
	switch {
	case n.Space == nsJSON && n.Local == "json":
		return cJSON
	case n.Space == nsReceipts:
		switch n.Local {
		case "request":
			return cRequest
		case "received":
			return cReceipt
		}
		return cNone
	case n.Space == nsMarkers:
		switch n.Local {
		case "received", "displayed", "acknowledged":
			return cReceipt
		}
		return cNone
	case n.Space == nsCorrect && n.Local == "replace":
		return cReplace
	case n.Space == nsDelay && n.Local == "delay":
		return cDelay
	case n.Space == nsSID && n.Local == "stanza-id":
		return cStanzaID
	case (n.Space == nsOMEMO1 || n.Space == nsOMEMO2) && n.Local == "encrypted",
		n.Space == nsOX && n.Local == "openpgp",
		n.Space == nsPGPOld && n.Local == "x":
		return cEncrypted
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
		if !m.haveErrText {
			m.cur3, m.haveErrText = cErrText, true
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
// event, a message event, a receipt, or none (Kind "").
//
// An end-to-end encrypted message (OMEMO with a payload, OpenPGP) is a
// message event with Encrypted and without Text: its body is a fallback
// ("this message is encrypted"), not the message. An OMEMO element without
// a payload is key transport between clients, not an event. A message
// without body or payload that carries a receipt or marker is a receipt
// event: ID the id it acknowledges, Status its kind.
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
	encrypted := m.encrypted != "" && (m.encrypted == "openpgp" || m.encPayload)
	if !m.seen.has(cBody) && !m.seen.has(cJSON) && !encrypted {
		if m.receiptID != "" {
			ev.Kind, ev.ID, ev.Status = "receipt", m.receiptID, m.receiptStatus
		}
		return nil
	}
	ev.Kind = "message"
	if encrypted {
		ev.Encrypted = m.encrypted
	} else {
		ev.Text = ownedString(m.body)
	}
	ev.Subject = ownedString(m.subject)
	ev.Thread = ownedString(m.thread)
	ev.Replace = m.replace
	ev.Delayed = m.seen.has(cDelay)
	ev.StanzaID, ev.StanzaIDBy = m.stanzaID, m.stanzaIDBy
	ev.WantsReceipt = m.seen.has(cRequest) && ev.ID != "" && ev.Type != "groupchat"
	return nil
}
