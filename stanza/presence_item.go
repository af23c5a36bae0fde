package stanza

// appendPresenceItem appends the <presence/> of a presence item: it checks
// the item (checkPresenceItem), picks its id, then writes it.
func (e *Encoder) appendPresenceItem(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	var h presenceHead
	if err := e.checkPresenceItem(it, &h); err != nil {
		return nil, info, err
	}
	id, err := e.stanzaID(dst, body, it.id, m)
	if err != nil {
		return nil, info, err
	}
	info.ID = id
	info.PresenceType = h.typ
	info.From, info.To = string(h.from), string(h.to)
	return appendPresence(dst, it, &h, id), info, nil
}

// presenceHead holds the checked attributes of a presence item's stanza.
type presenceHead struct {
	from, to []byte // canonical JIDs; nil for none
	typ      string // "available" for none
}

// checkPresenceItem checks every member of a presence item, in a fixed
// order (which decides the error reported for an item with several
// faults), and fills in h, the stanza's attributes other than the id.
func (e *Encoder) checkPresenceItem(it *item, h *presenceHead) *ItemError {
	if it.text.set || it.payload != nil || it.subject.set || it.thread.set || it.replace.set || it.receiptSet {
		return itemErr(ReasonBadField, "text, payload, subject, thread, receipt and replace belong to message items")
	}
	var err *ItemError
	if h.typ, err = presenceType(it.typ); err != nil {
		return err
	}
	if it.target.set {
		if h.to, err = e.target(it); err != nil {
			return err
		}
	} else if e.o.Mode == ModeComponent || (h.typ != "available" && h.typ != "unavailable") {
		return itemErr(ReasonMissingField, "target is required")
	}
	if h.from, err = e.sender(it.from); err != nil {
		return err
	}
	if it.show.set {
		switch string(it.show.raw) {
		case "away", "chat", "dnd", "xa":
		default:
			return itemErr(ReasonBadField, "show must be away, chat, dnd or xa, got "+excerpt(it.show.raw))
		}
	}
	if it.status.set {
		if err := checkText(it.status, "status", e.maxText); err != nil {
			return err
		}
	}
	return nil
}

// presenceType returns the presence type the item's type member names,
// "available" when it is absent.
func presenceType(f jstr) (string, *ItemError) {
	if !f.set {
		return "available", nil
	}
	// constants, so that the result does not alias the body
	switch string(f.raw) {
	case "available":
		return "available", nil
	case "unavailable":
		return "unavailable", nil
	case "subscribe":
		return "subscribe", nil
	case "subscribed":
		return "subscribed", nil
	case "unsubscribe":
		return "unsubscribe", nil
	case "unsubscribed":
		return "unsubscribed", nil
	}
	return "", itemErr(ReasonBadField, "presence type must be available, unavailable, subscribe, subscribed, unsubscribe or unsubscribed, got "+excerpt(f.raw))
}

// appendPresence writes the <presence/> of a checked presence item.
func appendPresence(dst []byte, it *item, h *presenceHead, id string) []byte {
	dst = append(dst, "<presence"...)
	if h.from != nil {
		dst = appendAttr(dst, " from='", h.from)
	}
	if h.to != nil {
		dst = appendAttr(dst, " to='", h.to)
	}
	if h.typ != "available" {
		dst = appendAttr(dst, " type='", h.typ)
	}
	dst = appendAttr(dst, " id='", id)
	if !it.show.set && !it.status.nonEmpty() {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	if it.show.set {
		// one of four constants, checked
		dst = append(dst, "<show>"...)
		dst = append(dst, it.show.raw...)
		dst = append(dst, "</show>"...)
	}
	if it.status.nonEmpty() {
		dst = append(dst, "<status>"...)
		dst = appendJstr(dst, it.status)
		dst = append(dst, "</status>"...)
	}
	return append(dst, "</presence>"...)
}
