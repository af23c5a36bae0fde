package stanza

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"
	"unsafe"
)

// Default limits of Limits fields left zero.
const (
	DefaultMaxInTextBytes    = 256 << 10 // 256 KiB of body, subject, thread, status or error text
	DefaultMaxInPayloadBytes = 256 << 10 // 256 KiB of XEP-0335 JSON
	DefaultMaxDepth          = 32        // element nesting inside the stanza
)

// Limits bound what DecodeMessage and DecodePresence accept and buffer.
// A zero field takes its default: MaxTextBytes DefaultMaxInTextBytes (256 KiB,
// applied to each of body, subject, thread, status and error text),
// MaxPayloadBytes DefaultMaxInPayloadBytes (256 KiB of JSON text), MaxDepth
// DefaultMaxDepth (32 levels of elements below the stanza element).
type Limits struct {
	MaxTextBytes    int
	MaxPayloadBytes int
	MaxDepth        int
}

func (l Limits) withDefaults() Limits {
	if l.MaxTextBytes <= 0 {
		l.MaxTextBytes = DefaultMaxInTextBytes
	}
	if l.MaxPayloadBytes <= 0 {
		l.MaxPayloadBytes = DefaultMaxInPayloadBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Event is one inbound event, encoded by AppendJSON as README.md describes in
// "Inbound events". Empty fields are omitted from the JSON.
type Event struct {
	Kind       string          // "message" | "error" | "presence" | "subscription" | "receipt"
	ID         string          // the stanza's id; our own id for kinds error and receipt
	From       string          // as received
	To         string          // as received
	Type       string          // message type, "normal" when absent or unknown; presence type
	Text       string          // message body; for kind error the error's text
	Subject    string          // message subject
	Thread     string          // message thread
	Payload    json.RawMessage // XEP-0335 JSON payload, valid JSON only
	Condition  string          // kind error: the defined condition, e.g. "service-unavailable"
	Show       string          // presence
	Status     string          // presence; kind receipt: received, displayed or acknowledged
	Room       string          // groupchat from a room the gateway joined: the room's bare JID (set by the gateway)
	Nick       string          // with Room: the sender's nick in the room
	Replace    string          // message: the id a XEP-0308 correction replaces
	Encrypted  string          // message: "omemo" or "openpgp" (end-to-end encrypted; Text is then empty)
	ReceivedAt time.Time       // set by the caller

	// WantsReceipt: a message (not groupchat) with an id that asked for a
	// XEP-0184 receipt. Not part of the JSON: the gateway answers it once
	// the event is confirmed.
	WantsReceipt bool
	// Delayed: the message carries a XEP-0203 <delay/> (offline storage, a
	// room's history). Not part of the JSON.
	Delayed bool
	// StanzaID and StanzaIDBy are the first XEP-0359 <stanza-id/> (the
	// id a room or archive gave the message, and who gave it). Not part of
	// the JSON.
	StanzaID, StanzaIDBy string
}

// ErrUnexpectedEOF wraps the reader's end of input inside a stanza: the
// stream is broken and no reply is possible.
var ErrUnexpectedEOF = errors.New("stanza: stream ended inside a stanza")

// streamish reports whether ns is the namespace of stanza children: the
// stanza's own, either stream namespace, or none.
func streamish(ns, stanzaNS string) bool {
	return ns == stanzaNS || ns == "" || ns == nsClient || ns == nsComponent
}

// child kinds while decoding.
const (
	cNone = iota
	cBody
	cSubject
	cThread
	cJSON
	cError
	cErrText
	cShow
	cStatus
	cPriority
	cRequest   // XEP-0184 <request/>
	cReceipt   // XEP-0184 <received/> or a XEP-0333 marker
	cReplace   // XEP-0308 <replace/>
	cEncrypted // OMEMO <encrypted/>, XEP-0373 <openpgp/> or XEP-0027 <x/>
	cMUCUser   // XEP-0045 <x xmlns='…muc#user'/> in presence
	cDelay     // XEP-0203 <delay/>
	cStanzaID  // XEP-0359 <stanza-id/>
)

// kinds is a set of child kinds: 1<<kind for each.
type kinds uint32

// first returns kind the first time it is called with it and adds it to
// the set; cNone afterwards, and for cNone.
func (k *kinds) first(kind int) int {
	if kind == cNone || *k&(1<<kind) != 0 {
		return cNone
	}
	*k |= 1 << kind
	return kind
}

// has reports whether kind is in the set.
func (k kinds) has(kind int) bool { return k&(1<<kind) != 0 }

// stanzaReader walks the rest of one stanza, collecting the character data
// of selected children within bounds, and always reads to the stanza's end.
type stanzaReader struct {
	r     xml.TokenReader
	lim   Limits
	depth int // of the element the last token is in; 0 after the stanza's end
	derr  *DecodeError
}

// next reads the stanza's next token and keeps count of the depth,
// recording a policy violation past lim.MaxDepth. An error of the reader
// ends the walk; what names the stanza in it.
func (s *stanzaReader) next(what string) (xml.Token, error) {
	tok, err := s.r.Token()
	if err != nil {
		if err == io.EOF {
			return nil, ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("stanza: reading %s: %w", what, err)
	}
	switch tok.(type) {
	case xml.StartElement:
		s.depth++
		if s.depth-1 > s.lim.MaxDepth {
			s.setErr("policy-violation", "elements nested too deeply")
		}
	case xml.EndElement:
		s.depth--
	}
	return tok, nil
}

// Bounds on the addressing attributes of an inbound stanza: a JID is at
// most 3 × 1023 bytes plus its separators (RFC 7622), and an id longer than
// MaxInIDBytes serves no client but inflates every event and reply.
const (
	MaxInJIDBytes = 3071
	MaxInIDBytes  = 1024
)

// checkAttrs refuses addressing attributes over their bounds.
func (s *stanzaReader) checkAttrs(from, to, id string) {
	switch {
	case len(id) > MaxInIDBytes:
		s.setErr("policy-violation", fmt.Sprintf("the id is over the limit of %d bytes", MaxInIDBytes))
	case len(from) > MaxInJIDBytes || len(to) > MaxInJIDBytes:
		s.setErr("jid-malformed", fmt.Sprintf("an address is over the limit of %d bytes", MaxInJIDBytes))
	}
}

func (s *stanzaReader) setErr(cond, text string) {
	if s.derr == nil {
		s.derr = decodeErr(cond, text)
	}
}

// grow appends c to *buf unless that passes max, in which case it records a
// policy violation and stops collecting.
func (s *stanzaReader) grow(buf *[]byte, c []byte, max int, what string) {
	if s.derr != nil {
		return
	}
	if len(*buf)+len(c) > max {
		s.setErr("policy-violation", fmt.Sprintf("%s is over the limit of %d bytes", what, max))
		return
	}
	*buf = append(*buf, c...)
}

// attrs returns the stanza attributes (in no namespace) of start.
func attrs(start *xml.StartElement) (from, to, id, typ string) {
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from = a.Value
		case "to":
			to = a.Value
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		}
	}
	return
}

// ownedString returns b as a string without copying it. b must be a buffer
// of DecodeMessage's own (built by grow from copies of the tokens) that
// nothing writes to afterwards.
func ownedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
