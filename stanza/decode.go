package stanza

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
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
	Kind       string          // "message" | "error" | "presence" | "subscription"
	ID         string          // the stanza's id; our own id for kind error
	From       string          // as received
	To         string          // as received
	Type       string          // message type, "normal" when absent or unknown; presence type
	Text       string          // message body; for kind error the error's text
	Subject    string          // message subject
	Thread     string          // message thread
	Payload    json.RawMessage // XEP-0335 JSON payload, valid JSON only
	Condition  string          // kind error: the defined condition, e.g. "service-unavailable"
	Show       string          // presence
	Status     string          // presence
	ReceivedAt time.Time       // set by the caller
}

// Presence is a decoded presence stanza.
type Presence struct {
	From, To, ID string
	Type         string // "available" when the stanza has no type attribute
	Show, Status string
	Priority     int
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
)

// stanzaReader walks the rest of one stanza, collecting the character data
// of selected children within bounds, and always reads to the stanza's end.
type stanzaReader struct {
	r     xml.TokenReader
	lim   Limits
	depth int
	derr  *DecodeError
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
// sizes and depth over the limits, not-acceptable for an invalid JSON
// payload) together with an Event holding From, To, ID and Type so the
// caller can address the error reply. An error of the reader is returned
// wrapped (ErrUnexpectedEOF at end of input): the stream is then unusable.
func DecodeMessage(start xml.StartElement, r xml.TokenReader, lim Limits) (Event, error) {
	lim = lim.withDefaults()
	var ev Event
	ev.From, ev.To, ev.ID, ev.Type = attrs(&start)
	switch ev.Type {
	case "chat", "error", "groupchat", "headline", "normal":
	default:
		ev.Type = "normal"
	}
	ns := start.Name.Space
	s := stanzaReader{r: r, lim: lim, depth: 1}
	var (
		body, subject, thread, payload, errText []byte
		haveBody, haveSubject, haveThread       bool
		haveJSON, haveError, haveCond           bool
		cur, cur3                               int
	)
	for s.depth > 0 {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				return ev, ErrUnexpectedEOF
			}
			return ev, fmt.Errorf("stanza: reading message: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			s.depth++
			if s.depth-1 > lim.MaxDepth {
				s.setErr("policy-violation", "elements nested too deeply")
			}
			switch s.depth {
			case 2:
				cur = cNone
				switch {
				case t.Name.Space == nsJSON && t.Name.Local == "json":
					if !haveJSON {
						haveJSON, cur = true, cJSON
					}
				case !streamish(t.Name.Space, ns):
				case t.Name.Local == "body":
					if !haveBody {
						haveBody, cur = true, cBody
					}
				case t.Name.Local == "subject":
					if !haveSubject {
						haveSubject, cur = true, cSubject
					}
				case t.Name.Local == "thread":
					if !haveThread {
						haveThread, cur = true, cThread
					}
				case t.Name.Local == "error":
					if !haveError {
						haveError, cur = true, cError
					}
				}
			case 3:
				cur3 = cNone
				if cur == cError && t.Name.Space == nsStanzas {
					if t.Name.Local == "text" {
						if errText == nil {
							cur3, errText = cErrText, []byte{}
						}
					} else if !haveCond {
						haveCond = true
						ev.Condition = t.Name.Local
					}
				}
			}
		case xml.EndElement:
			s.depth--
			switch s.depth {
			case 1:
				cur = cNone
			case 2:
				cur3 = cNone
			}
		case xml.CharData:
			switch {
			case s.depth == 2 && cur == cBody:
				s.grow(&body, t, lim.MaxTextBytes, "body")
			case s.depth == 2 && cur == cSubject:
				s.grow(&subject, t, lim.MaxTextBytes, "subject")
			case s.depth == 2 && cur == cThread:
				s.grow(&thread, t, lim.MaxTextBytes, "thread")
			case s.depth == 2 && cur == cJSON:
				s.grow(&payload, t, lim.MaxPayloadBytes, "JSON payload")
			case s.depth == 3 && cur3 == cErrText:
				s.grow(&errText, t, lim.MaxTextBytes, "error text")
			}
		}
	}
	if s.derr != nil {
		return ev, s.derr
	}
	if ev.Type == "error" {
		ev.Kind = "error"
		ev.Text = ownedString(errText)
		return ev, nil
	}
	if haveJSON {
		// json.Valid does not check UTF-8; the event must be UTF-8 JSON
		// whatever token reader fed us.
		if !json.Valid(payload) || !utf8.Valid(payload) {
			return ev, decodeErr("not-acceptable", "the JSON payload is not valid JSON")
		}
		ev.Payload = json.RawMessage(payload)
	}
	if !haveBody && !haveJSON {
		return ev, nil
	}
	ev.Kind = "message"
	ev.Text = ownedString(body)
	ev.Subject = ownedString(subject)
	ev.Thread = ownedString(thread)
	return ev, nil
}

// DecodePresence reads the rest of one <presence/> whose start element has
// been read, like DecodeMessage. Show, Status and Priority come from the
// first such children in the stanza's namespace; a priority that is not an
// integer in -128..127 is a bad-request. Type is "available" when absent.
func DecodePresence(start xml.StartElement, r xml.TokenReader, lim Limits) (Presence, error) {
	lim = lim.withDefaults()
	var p Presence
	p.From, p.To, p.ID, p.Type = attrs(&start)
	if p.Type == "" {
		p.Type = "available"
	}
	ns := start.Name.Space
	s := stanzaReader{r: r, lim: lim, depth: 1}
	var (
		show, status, prio          []byte
		haveShow, haveStatus, haveP bool
		cur                         int
	)
	for s.depth > 0 {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				return p, ErrUnexpectedEOF
			}
			return p, fmt.Errorf("stanza: reading presence: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			s.depth++
			if s.depth-1 > lim.MaxDepth {
				s.setErr("policy-violation", "elements nested too deeply")
			}
			if s.depth == 2 {
				cur = cNone
				if streamish(t.Name.Space, ns) {
					switch t.Name.Local {
					case "show":
						if !haveShow {
							haveShow, cur = true, cShow
						}
					case "status":
						if !haveStatus {
							haveStatus, cur = true, cStatus
						}
					case "priority":
						if !haveP {
							haveP, cur = true, cPriority
						}
					}
				}
			}
		case xml.EndElement:
			s.depth--
			if s.depth == 1 {
				cur = cNone
			}
		case xml.CharData:
			if s.depth != 2 {
				continue
			}
			switch cur {
			case cShow:
				s.grow(&show, t, 16, "show")
			case cStatus:
				s.grow(&status, t, lim.MaxTextBytes, "status")
			case cPriority:
				s.grow(&prio, t, 16, "priority")
			}
		}
	}
	if s.derr != nil {
		return p, s.derr
	}
	p.Show = string(show)
	p.Status = string(status)
	if haveP {
		n, err := strconv.ParseInt(string(trimSpace(prio)), 10, 8)
		if err != nil {
			return p, decodeErr("bad-request", "priority must be an integer from -128 to 127")
		}
		p.Priority = int(n)
	}
	return p, nil
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
