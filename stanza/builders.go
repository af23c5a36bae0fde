package stanza

// These builders take caller-supplied strings; invalid UTF-8 and characters
// XML 1.0 cannot carry are replaced by U+FFFD so the output is always
// well-formed.

// AppendPing appends an XEP-0199 ping IQ:
// <iq type='get' from= to= id=><ping xmlns='urn:xmpp:ping'/></iq>.
// from and to are omitted when empty.
func AppendPing(dst []byte, from, to, id string) []byte {
	dst = append(dst, "<iq type='get'"...)
	dst = appendAttrSafe(dst, " from='", from)
	dst = appendAttrSafe(dst, " to='", to)
	dst = appendAttrSafe(dst, " id='", id)
	return append(dst, "><ping xmlns='urn:xmpp:ping'/></iq>"...)
}

// AppendPresence appends a presence stanza. Empty attributes and children
// are omitted; typ "" or "available" writes no type attribute.
func AppendPresence(dst []byte, from, to, id, typ, show, status string) []byte {
	dst = append(dst, "<presence"...)
	dst = appendAttrSafe(dst, " from='", from)
	dst = appendAttrSafe(dst, " to='", to)
	if typ != "available" {
		dst = appendAttrSafe(dst, " type='", typ)
	}
	dst = appendAttrSafe(dst, " id='", id)
	if show == "" && status == "" {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = appendChildSafe(dst, "show", show)
	dst = appendChildSafe(dst, "status", status)
	return append(dst, "</presence>"...)
}

// AppendReceipt appends the XEP-0184 receipt for the message orig (which
// asked for one: orig.WantsReceipt):
//
//	<message from=orig.To to=orig.From type=orig.Type><received xmlns='urn:xmpp:receipts' id=orig.ID/></message>
//
// withFrom false omits from (client mode: the server stamps the account's
// address). The type is copied for chat and normal (a client files the
// receipt with the conversation) and omitted otherwise.
func AppendReceipt(dst []byte, orig *Event, withFrom bool) []byte {
	dst = append(dst, "<message"...)
	if withFrom {
		dst = appendAttrSafe(dst, " from='", orig.To)
	}
	dst = appendAttrSafe(dst, " to='", orig.From)
	if orig.Type == "chat" {
		dst = append(dst, " type='chat'"...)
	}
	dst = append(dst, "><received xmlns='"+nsReceipts+"'"...)
	dst = appendAttrSafe(dst, " id='", orig.ID)
	return append(dst, "/></message>"...)
}

// AppendMessageError appends the error reply to the message orig:
//
//	<message type='error' from=orig.To to=orig.From id=orig.ID>
//	  <error type=errType><condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
//	  <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>text</text></error></message>
//
// errType is one of auth, cancel, continue, modify, wait; condition a defined
// condition of RFC 6120 §8.3.3 (anything that is not a plain lower-case name
// becomes undefined-condition). The text child is omitted when text is "".
func AppendMessageError(dst []byte, orig *Event, errType, condition, text string) []byte {
	return appendStanzaError(dst, "message", orig.To, orig.From, orig.ID, errType, condition, text)
}

// appendStanzaError builds the error reply of AppendMessageError.
func appendStanzaError(dst []byte, name, from, to, id, errType, condition, text string) []byte {
	if !plainName(condition) {
		condition = "undefined-condition"
	}
	switch errType {
	case "auth", "cancel", "continue", "modify", "wait":
	default:
		errType = "cancel"
	}
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, " type='error'"...)
	dst = appendAttrSafe(dst, " from='", from)
	dst = appendAttrSafe(dst, " to='", to)
	dst = appendAttrSafe(dst, " id='", id)
	dst = append(dst, "><error type='"...)
	dst = append(dst, errType...)
	dst = append(dst, "'><"...)
	dst = append(dst, condition...)
	dst = append(dst, " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"...)
	if text != "" {
		dst = append(dst, "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>"...)
		dst = appendEscSafe(dst, text, false)
		dst = append(dst, "</text>"...)
	}
	dst = append(dst, "</error></"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// plainName reports whether s is a name of [a-z-] starting with a letter
// (an XML name: "-" cannot start one).
func plainName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func appendAttrSafe(dst []byte, open, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, open...)
	dst = appendEscSafe(dst, v, true)
	return append(dst, '\'')
}

func appendChildSafe(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, '<')
	dst = append(dst, name...)
	dst = append(dst, '>')
	dst = appendEscSafe(dst, v, false)
	dst = append(dst, "</"...)
	dst = append(dst, name...)
	return append(dst, '>')
}

// AppendMUCJoin appends the presence that joins a XEP-0045 room as
// occupant (room@service/nick), asking for no history:
//
//	<presence from= to=occupant id=><x xmlns='http://jabber.org/protocol/muc'>
//	  <history maxchars='0'/><password>…</password></x></presence>
//
// from (omitted when empty) is our address; the password child is omitted
// when empty.
func AppendMUCJoin(dst []byte, from, occupant, id, password string) []byte {
	dst = append(dst, "<presence"...)
	dst = appendAttrSafe(dst, " from='", from)
	dst = appendAttrSafe(dst, " to='", occupant)
	dst = appendAttrSafe(dst, " id='", id)
	dst = append(dst, "><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/>"...)
	dst = appendChildSafe(dst, "password", password)
	return append(dst, "</x></presence>"...)
}
