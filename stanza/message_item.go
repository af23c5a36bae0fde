package stanza

import "fmt"

// appendMessageItem appends the <message/> of a message item: it checks
// the item (checkMessageItem), picks its id, then writes it.
func (e *Encoder) appendMessageItem(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	var h messageHead
	if err := e.checkMessageItem(it, &h); err != nil {
		return nil, info, err
	}
	id, err := e.stanzaID(dst, body, it.id, m)
	if err != nil {
		return nil, info, err
	}
	if h.replace != nil && string(h.replace) == id {
		return nil, info, itemErr(ReasonBadField, "replace names the correction's own id: a correction needs an id of its own")
	}
	info.ID = id
	if it.receipt || h.typ == "groupchat" {
		info.Receipt, info.Groupchat = it.receipt, h.typ == "groupchat"
		info.To = string(h.to)
	}
	return appendMessage(dst, it, &h, id), info, nil
}

// messageHead holds the checked attributes of a message item's stanza.
type messageHead struct {
	from, to []byte // canonical JIDs; from nil for none
	typ      string
	replace  []byte // the id a correction replaces; nil for none
}

// checkMessageItem checks every member of a message item, in a fixed order
// (which decides the error reported for an item with several faults), and
// fills in h, the stanza's attributes other than the id.
func (e *Encoder) checkMessageItem(it *item, h *messageHead) *ItemError {
	if it.status.set || it.show.set {
		return itemErr(ReasonBadField, "status and show belong to presence items")
	}
	if !it.target.set {
		return itemErr(ReasonMissingField, "target is required")
	}
	if !it.text.set && it.payload == nil && !it.subject.nonEmpty() {
		return itemErr(ReasonMissingField, "a message needs text, payload or subject")
	}
	var err *ItemError
	if h.to, err = e.target(it); err != nil {
		return err
	}
	if h.from, err = e.sender(it.from); err != nil {
		return err
	}
	if h.typ, err = e.messageType(it.typ); err != nil {
		return err
	}
	if err := e.checkMessageContent(it); err != nil {
		return err
	}
	if it.replace.set {
		if h.replace, err = decodeShort(it.replace, "replace", maxIDBytes); err != nil {
			return err
		}
		if len(h.replace) == 0 {
			return itemErr(ReasonBadField, "replace is empty: it names the id of the message to correct")
		}
	}
	return nil
}

// messageType returns the type to write for the item's type member.
func (e *Encoder) messageType(f jstr) (string, *ItemError) {
	if !f.set {
		return e.defaultType, nil
	}
	// constants, so that the result does not alias the body
	switch string(f.raw) {
	case "chat":
		return "chat", nil
	case "normal":
		return "normal", nil
	case "headline":
		return "headline", nil
	case "groupchat":
		return "groupchat", nil
	}
	return "", itemErr(ReasonBadField, "type must be chat, normal, headline or groupchat, got "+excerpt(f.raw))
}

// checkMessageContent checks the text, subject, thread and payload members
// against their bounds and for characters XML cannot carry.
func (e *Encoder) checkMessageContent(it *item) *ItemError {
	if it.text.set {
		if err := checkText(it.text, "text", e.maxText); err != nil {
			return err
		}
	}
	if it.subject.nonEmpty() {
		if err := checkText(it.subject, "subject", e.maxText); err != nil {
			return err
		}
	}
	if it.thread.nonEmpty() {
		if err := checkText(it.thread, "thread", maxThreadBytes); err != nil {
			if err.Reason == ReasonTooLong {
				err.Reason = ReasonBadField
			}
			return err
		}
	}
	if it.payload != nil {
		if e.o.MaxPayloadBytes > 0 && len(it.payload) > e.o.MaxPayloadBytes {
			return itemErr(ReasonTooLong, fmt.Sprintf("payload is %d bytes, over the limit of %d", len(it.payload), e.o.MaxPayloadBytes))
		}
		if !it.payloadPlain && hasNonChar(it.payload) {
			return itemErr(ReasonInvalidChar, "payload holds a character XML cannot carry")
		}
	}
	return nil
}

// Namespaces of the delivery extensions an outbound message may carry.
const (
	nsReceipts = "urn:xmpp:receipts"              // XEP-0184
	nsMarkers  = "urn:xmpp:chat-markers:0"        // XEP-0333
	nsCorrect  = "urn:xmpp:message-correct:0"     // XEP-0308
	nsSID      = "urn:xmpp:sid:0"                 // XEP-0359
	nsOMEMO1   = "eu.siacs.conversations.axolotl" // XEP-0384 before 0.4 (Conversations, Dino, Gajim, Monal)
	nsOMEMO2   = "urn:xmpp:omemo:2"               // XEP-0384 0.4 and later
	nsOX       = "urn:xmpp:openpgp:0"             // XEP-0373 OpenPGP for XMPP
	nsPGPOld   = "jabber:x:encrypted"             // XEP-0027 (legacy OpenPGP)
	nsDelay    = "urn:xmpp:delay"                 // XEP-0203
)

// appendMessage writes the <message/> of a checked message item. After the
// content come, in this order: a XEP-0184 receipt request (not in
// groupchat, where XEP-0184 advises against it) and XEP-0333 markable when
// the item asks for a receipt, a XEP-0308 replace, and always a XEP-0359
// origin-id equal to the stanza id.
func appendMessage(dst []byte, it *item, h *messageHead, id string) []byte {
	dst = append(dst, "<message"...)
	if h.from != nil {
		dst = appendAttr(dst, " from='", h.from)
	}
	dst = appendAttr(dst, " to='", h.to)
	dst = appendAttr(dst, " type='", h.typ)
	dst = appendAttr(dst, " id='", id)
	dst = append(dst, '>')
	if it.subject.nonEmpty() {
		dst = append(dst, "<subject>"...)
		dst = appendJstr(dst, it.subject)
		dst = append(dst, "</subject>"...)
	}
	if it.text.set {
		dst = append(dst, "<body>"...)
		dst = appendJstr(dst, it.text)
		dst = append(dst, "</body>"...)
	}
	if it.thread.nonEmpty() {
		dst = append(dst, "<thread>"...)
		dst = appendJstr(dst, it.thread)
		dst = append(dst, "</thread>"...)
	}
	if it.payload != nil {
		dst = append(dst, "<json xmlns='urn:xmpp:json:0'>"...)
		if it.payloadPlain {
			dst = append(dst, it.payload...)
		} else {
			dst = appendEsc(dst, it.payload, false)
		}
		dst = append(dst, "</json>"...)
	}
	if it.receipt {
		if h.typ != "groupchat" {
			dst = append(dst, "<request xmlns='"+nsReceipts+"'/>"...)
		}
		dst = append(dst, "<markable xmlns='"+nsMarkers+"'/>"...)
	}
	if h.replace != nil {
		dst = appendAttr(append(dst, "<replace xmlns='"+nsCorrect+"'"...), " id='", h.replace)
		dst = append(dst, "/>"...)
	}
	return appendOriginID(dst, id)
}

// appendOriginID ends a message: its XEP-0359 origin-id, equal to the
// stanza id, and the end tag.
func appendOriginID(dst []byte, id string) []byte {
	dst = appendAttr(append(dst, "<origin-id xmlns='"+nsSID+"'"...), " id='", id)
	return append(dst, "/></message>"...)
}
