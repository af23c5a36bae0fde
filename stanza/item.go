package stanza

import "strconv"

// jstr is a string member of an item: the raw JSON string body (between the
// quotes) and whether it holds escapes.
type jstr struct {
	raw   []byte
	esc   bool
	plain bool // copy into XML as is: no escapes, nothing to escape
	set   bool
}

// nonEmpty reports whether the member is present and not "".
func (f jstr) nonEmpty() bool { return f.set && len(f.raw) > 0 }

// item holds the members of one outbound item as spans of the body.
type item struct {
	target, text, typ, from, subject, thread, id, kind, stanza, enqueuedAt, status, show, replace jstr
	payload                                                                                       []byte
	payloadPlain                                                                                  bool
	// receipt is the item's receipt member: true asks for a XEP-0184
	// receipt and XEP-0333 markers. receiptSet: the member is present
	// (true or false), so that a stanza item can refuse it.
	receipt, receiptSet bool
}

// field returns the member of it that key names and a bit of its own, or
// nil.
func (it *item) field(key string) (*jstr, uint16) {
	switch key {
	case "target":
		return &it.target, 1 << 0
	case "text":
		return &it.text, 1 << 1
	case "type":
		return &it.typ, 1 << 2
	case "from":
		return &it.from, 1 << 3
	case "subject":
		return &it.subject, 1 << 4
	case "thread":
		return &it.thread, 1 << 5
	case "id":
		return &it.id, 1 << 6
	case "kind":
		return &it.kind, 1 << 7
	case "stanza":
		return &it.stanza, 1 << 8
	case "enqueued_at":
		return &it.enqueuedAt, 1 << 9
	case "status":
		return &it.status, 1 << 10
	case "show":
		return &it.show, 1 << 11
	case "replace":
		return &it.replace, 1 << 13
	}
	return nil, 0
}

// payloadBit and receiptBit mark the payload and receipt members in
// parseItem's set of members seen.
const (
	payloadBit = 1 << 12
	receiptBit = 1 << 14
)

// parseItem scans body (valid UTF-8) as one JSON object into it. Member
// names are matched exactly (case-sensitive) after unescaping; unknown
// members are ignored; a null value counts as absent. A member of ours that
// appears twice is an error (ReasonBadField): JSON parsers disagree on which
// one counts, so the worker's intent is unknown.
func parseItem(body []byte, it *item) *ItemError {
	s := scanner{b: body}
	var bad *ItemError
	var seen uint16
	twice := func(key []byte, bit uint16) bool {
		if seen&bit != 0 {
			if bad == nil {
				bad = itemErr(ReasonBadField, "member "+excerpt(key)+" appears twice")
			}
			return true
		}
		seen |= bit
		return false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return itemErr(ReasonInvalidJSON, "body is not a JSON object")
	}
	ok := s.object(func(rawKey []byte, esc bool) bool {
		key := rawKey
		var kbuf [16]byte
		if esc {
			if n, good := checkJSONString(rawKey, true); !good || n > len(kbuf) {
				return s.value() // not one of ours
			}
			key = appendJSONString(kbuf[:0], rawKey, true)
		}
		if s.depth == 1 && string(key) == "payload" {
			twice(key, payloadBit)
			s.ws()
			start, special := s.i, s.special
			if !s.value() {
				return false
			}
			v := body[start:s.i]
			it.payloadPlain = s.special == special
			if string(v) == "null" {
				v = nil
			}
			it.payload = v
			return true
		}
		if s.depth == 1 && string(key) == "receipt" {
			twice(key, receiptBit)
			s.ws()
			start := s.i
			if !s.value() {
				return false
			}
			switch string(body[start:s.i]) {
			case "true":
				it.receipt, it.receiptSet = true, true
			case "false":
				it.receipt, it.receiptSet = false, true
			case "null":
				it.receipt, it.receiptSet = false, false
			default:
				if bad == nil {
					bad = itemErr(ReasonBadField, "receipt must be true or false")
				}
			}
			return true
		}
		f, bit := it.field(string(key))
		if f == nil {
			return s.value()
		}
		twice(key, bit)
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '"' {
			raw, e, plain, good := s.str()
			if !good {
				return false
			}
			*f = jstr{raw: raw, esc: e, plain: plain, set: true}
			return true
		}
		start := s.i
		if !s.value() {
			return false
		}
		if string(body[start:s.i]) == "null" {
			*f = jstr{}
			return true
		}
		if bad == nil {
			bad = itemErr(ReasonBadField, excerpt(key)+" must be a string")
		}
		return true
	})
	if !ok {
		return jsonError(&s)
	}
	s.ws()
	if s.i != len(s.b) {
		s.err = jsonErr{off: s.i, msg: "data after the object"}
		return jsonError(&s)
	}
	return bad
}

// jsonError describes where the body stopped being JSON by offset only: the
// bytes around it may be message content.
func jsonError(s *scanner) *ItemError {
	return itemErr(ReasonInvalidJSON, s.err.msg+" at byte "+strconv.Itoa(s.err.off)+" of "+strconv.Itoa(len(s.b)))
}
