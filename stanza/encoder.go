package stanza

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

// Mode says which kind of XMPP stream the gateway owns. Its values are
// those of the config key xmpp.mode; the component package and the gateway
// use the same type.
type Mode string

// The stream modes.
const (
	ModeComponent Mode = "component" // XEP-0114 component, namespace jabber:component:accept
	ModeClient    Mode = "client"    // c2s client, namespace jabber:client
)

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool { return m == ModeComponent || m == ModeClient }

// DefaultMaxTextBytes is the bound on text used when Options.MaxTextBytes is 0.
const DefaultMaxTextBytes = 65536

// DefaultMaxStanzaBytes is the bound on an encoded stanza used when
// Options.MaxStanzaBytes is 0: 240 KiB, below the default stanza size limits
// of Prosody (256 KiB on c2s, 512 KiB on component ports).
const DefaultMaxStanzaBytes = 240 << 10

// maxIDBytes bounds a stanza id, maxThreadBytes a thread id.
const (
	maxIDBytes     = 1023
	maxThreadBytes = 1023
)

// Options configure an Encoder.
type Options struct {
	Mode         Mode   // "" = ModeComponent
	Domain       string // component mode: the component's domain, e.g. gw.example.org
	Account      string // client mode: the account's JID as bound (full JID); the only allowed `from` (bare or full form of it)
	DefaultFrom  string // component mode: localpart used when an item names no sender ("" = the domain itself)
	DefaultType  string // chat|normal|headline|groupchat ("" = chat)
	MaxTextBytes int    // bound on `text` (and subject, status) in UTF-8 bytes, inclusive; 0 = DefaultMaxTextBytes
	// MaxPayloadBytes bounds the JSON text of `payload`; 0 = no bound beyond
	// the body's size.
	MaxPayloadBytes int
	// MaxStanzaBytes bounds the encoded stanza: every byte Append writes for
	// one item, after escaping (which can grow text five-fold). An item over
	// it is refused with ReasonTooLarge. 0 = DefaultMaxStanzaBytes.
	MaxStanzaBytes int
}

// Encoder turns outbound items into stanza bytes. It is immutable after
// NewEncoder and safe for concurrent use.
type Encoder struct {
	o           Options
	domain      string // canonical domain (component mode)
	defaultFrom []byte // canonical default sender; nil in client mode
	account     jid.JID
	accountFull string
	accountBare string
	defaultType string
	maxText     int
	maxStanza   int
}

// NewEncoder validates o and returns an Encoder.
func NewEncoder(o Options) (*Encoder, error) {
	if o.Mode == "" {
		o.Mode = ModeComponent
	}
	e := &Encoder{o: o, maxText: o.MaxTextBytes, defaultType: o.DefaultType}
	if e.maxText == 0 {
		e.maxText = DefaultMaxTextBytes
	}
	if e.maxText < 0 {
		return nil, errors.New("stanza: MaxTextBytes must not be negative")
	}
	if o.MaxPayloadBytes < 0 {
		return nil, errors.New("stanza: MaxPayloadBytes must not be negative")
	}
	e.maxStanza = o.MaxStanzaBytes
	if e.maxStanza == 0 {
		e.maxStanza = DefaultMaxStanzaBytes
	}
	if e.maxStanza < 0 {
		return nil, errors.New("stanza: MaxStanzaBytes must not be negative")
	}
	if e.defaultType == "" {
		e.defaultType = "chat"
	}
	if !validMessageType([]byte(e.defaultType)) {
		return nil, fmt.Errorf("stanza: DefaultType %q is not chat, normal, headline or groupchat", o.DefaultType)
	}
	switch o.Mode {
	case ModeComponent:
		d, err := jid.Parse(o.Domain)
		if err != nil || d.Localpart() != "" || d.Resourcepart() != "" {
			return nil, fmt.Errorf("stanza: Domain %q is not a domain JID", o.Domain)
		}
		e.domain = d.String()
		if o.DefaultFrom == "" {
			e.defaultFrom = []byte(e.domain)
		} else {
			j, err := jid.New(o.DefaultFrom, e.domain, "")
			if err != nil {
				return nil, fmt.Errorf("stanza: DefaultFrom %q is not a valid localpart: %w", o.DefaultFrom, err)
			}
			e.defaultFrom = []byte(j.String())
		}
	case ModeClient:
		j, err := jid.Parse(o.Account)
		if err != nil || j.Localpart() == "" {
			return nil, fmt.Errorf("stanza: Account %q is not a valid account JID", o.Account)
		}
		e.account = j
		e.accountFull = j.String()
		e.accountBare = j.Bare().String()
	default:
		return nil, fmt.Errorf("stanza: unknown Mode %q", o.Mode)
	}
	return e, nil
}

// Meta carries the AMQP properties the encoder needs.
type Meta struct {
	MessageID     string
	CorrelationID string
	Type          string
	AppID         string
	UserID        string
	ContentType   string
	Timestamp     time.Time
}

// Info describes the stanza Append wrote.
type Info struct {
	ID         string    // the stanza id written
	Kind       string    // "message" or "presence"
	EnqueuedAt time.Time // from item.enqueued_at, else Meta.Timestamp, else zero

	// Presence stanzas only (left empty for messages, so that the message
	// path does not allocate): the presence type ("available" when the
	// stanza has none) and the from and to written ("" when absent). The
	// gateway learns from them about subscriptions that workers answer.
	PresenceType string
	From, To     string
}

// Append appends the stanza for one item (an AMQP message body) to dst.
// On error it returns dst unchanged (same length) and a *ItemError; the bytes
// of dst beyond its length may have been used as scratch space. A stanza
// over Options.MaxStanzaBytes is such an error (ReasonTooLarge).
func (e *Encoder) Append(dst []byte, body []byte, m Meta) ([]byte, Info, error) {
	n0 := len(dst)
	out, info, ierr := e.append(dst, body, &m)
	if ierr == nil && len(out)-n0 > e.maxStanza {
		ierr = tooLarge(e.maxStanza)
	}
	if ierr != nil {
		return dst[:n0], Info{}, ierr
	}
	return out, info, nil
}

func (e *Encoder) append(dst []byte, body []byte, m *Meta) ([]byte, Info, *ItemError) {
	var info Info
	if !utf8.Valid(body) {
		return nil, info, itemErr(ReasonInvalidUTF8, "body is not valid UTF-8")
	}
	var it item
	if err := parseItem(body, &it); err != nil {
		return nil, info, err
	}

	// enqueued_at
	info.EnqueuedAt = m.Timestamp
	if it.enqueuedAt.set {
		s, err := decodeShort(it.enqueuedAt, "enqueued_at", 64)
		if err != nil {
			return nil, info, err
		}
		var t time.Time
		if t.UnmarshalText(s) != nil {
			return nil, info, itemErr(ReasonBadField, "enqueued_at is not an RFC 3339 time: "+excerpt(s))
		}
		info.EnqueuedAt = t
	}

	if it.stanza.set {
		if it.target.set || it.text.set || it.payload != nil || it.typ.set || it.from.set ||
			it.subject.set || it.thread.set || it.kind.set || it.status.set || it.show.set || it.id.set {
			return nil, info, itemErr(ReasonBadField, "stanza cannot be combined with other fields")
		}
		return e.appendRaw(dst, body, &it, m, info)
	}

	kind := "message"
	if it.kind.set {
		switch string(it.kind.raw) {
		case "message", "presence":
			if string(it.kind.raw) == "presence" {
				kind = "presence"
			}
		default:
			return nil, info, itemErr(ReasonBadField, "kind must be message or presence, got "+excerpt(it.kind.raw))
		}
	}
	info.Kind = kind
	if kind == "presence" {
		return e.appendPresenceItem(dst, body, &it, m, info)
	}
	return e.appendMessageItem(dst, body, &it, m, info)
}

func validMessageType(t []byte) bool {
	switch string(t) {
	case "chat", "normal", "headline", "groupchat":
		return true
	}
	return false
}

// decodeShort decodes the short string member f (bounded by max bytes) into
// buf, validating its characters.
func decodeShort(f jstr, name string, max int) ([]byte, *ItemError) {
	n, ok := checkJSONString(f.raw, f.esc)
	if !ok {
		return nil, itemErr(ReasonInvalidChar, name+" holds a character XML cannot carry")
	}
	if n > max {
		return nil, itemErr(ReasonBadField, fmt.Sprintf("%s is longer than %d bytes", name, max))
	}
	if !f.esc {
		return f.raw, nil
	}
	return appendJSONString(make([]byte, 0, n), f.raw, true), nil
}

// checkText validates a character-data member and its bound.
func checkText(f jstr, name string, max int) *ItemError {
	if f.plain {
		if len(f.raw) > max {
			return itemErr(ReasonTooLong, fmt.Sprintf("%s is %d bytes, over the limit of %d", name, len(f.raw), max))
		}
		return nil
	}
	n, ok := checkJSONString(f.raw, f.esc)
	if !ok {
		return itemErr(ReasonInvalidChar, name+" holds a character XML cannot carry")
	}
	if n > max {
		return itemErr(ReasonTooLong, fmt.Sprintf("%s is %d bytes, over the limit of %d", name, n, max))
	}
	return nil
}

// target validates the target member and returns its canonical form.
func (e *Encoder) target(it *item) ([]byte, *ItemError) {
	t, err := decodeShort(it.target, "target", 3071)
	if err != nil {
		if err.Reason == ReasonBadField {
			err.Reason = ReasonBadJID
		}
		return nil, err
	}
	if len(t) == 0 {
		return nil, itemErr(ReasonMissingField, "target is empty")
	}
	canon, jerr := canonJID(t)
	if jerr != nil {
		return nil, itemErr(ReasonBadJID, "target "+excerpt(t)+": "+jerr.Error())
	}
	return canon, nil
}

// sender validates the item's from member (component: localpart or JID of
// our domain; client: the account's JID) and returns the from to write, or
// nil for none.
func (e *Encoder) sender(f jstr) ([]byte, *ItemError) {
	if !f.set || len(f.raw) == 0 {
		if e.o.Mode == ModeClient {
			return nil, nil
		}
		return e.defaultFrom, nil
	}
	s, err := decodeShort(f, "from", 3071)
	if err != nil {
		if err.Reason == ReasonBadField {
			err.Reason = ReasonBadJID
		}
		return nil, err
	}
	return e.checkFrom(s, true)
}

// checkFrom validates a sender address. bareLocal allows a bare localpart
// (items; not raw stanzas). The result may alias s.
func (e *Encoder) checkFrom(s []byte, bareLocal bool) ([]byte, *ItemError) {
	if e.o.Mode == ModeClient {
		j, err := jid.Parse(string(s))
		if err != nil {
			return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+err.Error())
		}
		switch j.String() {
		case e.accountFull:
			return []byte(e.accountFull), nil
		case e.accountBare:
			return []byte(e.accountBare), nil
		}
		return nil, itemErr(ReasonForbiddenFrom, "from "+excerpt(s)+" is not the account's JID")
	}
	if string(s) == e.domain {
		return []byte(e.domain), nil
	}
	if bareLocal && bytes.IndexByte(s, '@') < 0 && bytes.IndexByte(s, '/') < 0 {
		// a localpart of our domain
		out := make([]byte, 0, len(s)+1+len(e.domain))
		out = append(append(append(out, s...), '@'), e.domain...)
		if fastJID(out) {
			return out, nil
		}
		j, err := jid.New(string(s), e.domain, "")
		if err != nil {
			return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+err.Error())
		}
		return []byte(j.String()), nil
	}
	canon, err := canonJID(s)
	if err != nil {
		return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+err.Error())
	}
	_, d, _ := splitJID(canon)
	if string(d) != e.domain {
		return nil, itemErr(ReasonForbiddenFrom, "from "+excerpt(s)+" is outside "+e.domain)
	}
	return canon, nil
}

// stanzaID returns the id to write and whether raw is a JSON string body
// (item id) or plain text.
func (e *Encoder) stanzaID(dst []byte, body []byte, f jstr, m *Meta) (string, *ItemError) {
	if f.set && len(f.raw) > 0 {
		s, err := decodeShort(f, "id", maxIDBytes)
		if err != nil {
			return "", err
		}
		return string(s), nil
	}
	if m.MessageID != "" {
		if len(m.MessageID) > maxIDBytes || !validXMLString(m.MessageID) {
			return "", itemErr(ReasonBadField, "AMQP message-id is not usable as a stanza id: "+excerpt(m.MessageID))
		}
		return m.MessageID, nil
	}
	return hashID(dst, body, m), nil
}

// hashID derives a stanza id from the body and the AMQP properties that do
// not change on redelivery: the first 16 bytes of SHA-256, as hex. The spare
// capacity of dst is used as scratch space.
func hashID(dst, body []byte, m *Meta) string {
	n0 := len(dst)
	b := append(dst, "xmppgw-id\x00"...)
	b = appendLV(b, body)
	b = appendLV(b, m.CorrelationID)
	b = appendLV(b, m.Type)
	b = appendLV(b, m.AppID)
	b = appendLV(b, m.UserID)
	b = appendLV(b, m.ContentType)
	if !m.Timestamp.IsZero() {
		b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp.Unix()))
	}
	sum := sha256.Sum256(b[n0:])
	var out [32]byte
	for i, c := range sum[:16] {
		out[2*i] = hexDigits[c>>4]
		out[2*i+1] = hexDigits[c&15]
	}
	return string(out[:])
}

func appendLV[T string | []byte](b []byte, s T) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func (e *Encoder) appendMessageItem(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	if it.status.set || it.show.set {
		return nil, info, itemErr(ReasonBadField, "status and show belong to presence items")
	}
	if !it.target.set {
		return nil, info, itemErr(ReasonMissingField, "target is required")
	}
	hasText := it.text.set
	hasSubject := it.subject.set && len(it.subject.raw) > 0
	if !hasText && it.payload == nil && !hasSubject {
		return nil, info, itemErr(ReasonMissingField, "a message needs text, payload or subject")
	}
	to, err := e.target(it)
	if err != nil {
		return nil, info, err
	}
	from, err := e.sender(it.from)
	if err != nil {
		return nil, info, err
	}
	typ := e.defaultType
	if it.typ.set {
		switch string(it.typ.raw) {
		case "chat":
			typ = "chat"
		case "normal":
			typ = "normal"
		case "headline":
			typ = "headline"
		case "groupchat":
			typ = "groupchat"
		default:
			return nil, info, itemErr(ReasonBadField, "type must be chat, normal, headline or groupchat, got "+excerpt(it.typ.raw))
		}
	}
	if hasText {
		if err := checkText(it.text, "text", e.maxText); err != nil {
			return nil, info, err
		}
	}
	if hasSubject {
		if err := checkText(it.subject, "subject", e.maxText); err != nil {
			return nil, info, err
		}
	}
	if it.thread.set && len(it.thread.raw) > 0 {
		if err := checkText(it.thread, "thread", maxThreadBytes); err != nil {
			if err.Reason == ReasonTooLong {
				err.Reason = ReasonBadField
			}
			return nil, info, err
		}
	}
	if it.payload != nil {
		if e.o.MaxPayloadBytes > 0 && len(it.payload) > e.o.MaxPayloadBytes {
			return nil, info, itemErr(ReasonTooLong, fmt.Sprintf("payload is %d bytes, over the limit of %d", len(it.payload), e.o.MaxPayloadBytes))
		}
		if !it.payloadPlain && hasNonChar(it.payload) {
			return nil, info, itemErr(ReasonInvalidChar, "payload holds a character XML cannot carry")
		}
	}
	id, err := e.stanzaID(dst, body, it.id, m)
	if err != nil {
		return nil, info, err
	}
	info.ID = id

	dst = append(dst, "<message"...)
	if from != nil {
		dst = appendAttr(dst, " from='", from)
	}
	dst = appendAttr(dst, " to='", to)
	dst = appendAttr(dst, " type='", typ)
	dst = appendAttr(dst, " id='", id)
	dst = append(dst, '>')
	if hasSubject {
		dst = append(dst, "<subject>"...)
		dst = appendJstr(dst, it.subject)
		dst = append(dst, "</subject>"...)
	}
	if hasText {
		dst = append(dst, "<body>"...)
		dst = appendJstr(dst, it.text)
		dst = append(dst, "</body>"...)
	}
	if it.thread.set && len(it.thread.raw) > 0 {
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
	dst = append(dst, "</message>"...)
	return dst, info, nil
}

// appendAttr appends ` name='value'` where open is ` name='`.
func appendAttr[T string | []byte](dst []byte, open string, v T) []byte {
	dst = append(dst, open...)
	dst = appendEsc(dst, v, true)
	return append(dst, '\'')
}

func (e *Encoder) appendPresenceItem(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	if it.text.set || it.payload != nil || it.subject.set || it.thread.set {
		return nil, info, itemErr(ReasonBadField, "text, payload, subject and thread belong to message items")
	}
	typ := "available"
	if it.typ.set {
		switch string(it.typ.raw) {
		case "available":
		case "unavailable":
			typ = "unavailable"
		case "subscribe":
			typ = "subscribe"
		case "subscribed":
			typ = "subscribed"
		case "unsubscribe":
			typ = "unsubscribe"
		case "unsubscribed":
			typ = "unsubscribed"
		default:
			return nil, info, itemErr(ReasonBadField, "presence type must be available, unavailable, subscribe, subscribed, unsubscribe or unsubscribed, got "+excerpt(it.typ.raw))
		}
	}
	var to []byte
	if it.target.set {
		var err *ItemError
		if to, err = e.target(it); err != nil {
			return nil, info, err
		}
	} else if e.o.Mode == ModeComponent || (typ != "available" && typ != "unavailable") {
		return nil, info, itemErr(ReasonMissingField, "target is required")
	}
	from, err := e.sender(it.from)
	if err != nil {
		return nil, info, err
	}
	if it.show.set {
		switch string(it.show.raw) {
		case "away", "chat", "dnd", "xa":
		default:
			return nil, info, itemErr(ReasonBadField, "show must be away, chat, dnd or xa, got "+excerpt(it.show.raw))
		}
	}
	if it.status.set {
		if err := checkText(it.status, "status", e.maxText); err != nil {
			return nil, info, err
		}
	}
	id, err := e.stanzaID(dst, body, it.id, m)
	if err != nil {
		return nil, info, err
	}
	info.ID = id
	info.PresenceType = typ
	info.From, info.To = string(from), string(to)
	dst = append(dst, "<presence"...)
	if from != nil {
		dst = appendAttr(dst, " from='", from)
	}
	if to != nil {
		dst = appendAttr(dst, " to='", to)
	}
	if typ != "available" {
		dst = appendAttr(dst, " type='", typ)
	}
	dst = appendAttr(dst, " id='", id)
	if !it.show.set && !(it.status.set && len(it.status.raw) > 0) {
		return append(dst, "/>"...), info, nil
	}
	dst = append(dst, '>')
	if it.show.set {
		dst = append(dst, "<show>"...)
		dst = append(dst, it.show.raw...)
		dst = append(dst, "</show>"...)
	}
	if it.status.set && len(it.status.raw) > 0 {
		dst = append(dst, "<status>"...)
		dst = appendJstr(dst, it.status)
		dst = append(dst, "</status>"...)
	}
	return append(dst, "</presence>"...), info, nil
}

// appendJstr appends the decoded string member f escaped as character data.
func appendJstr(dst []byte, f jstr) []byte {
	if f.plain {
		return append(dst, f.raw...)
	}
	return appendJSONStringXML(dst, f.raw, f.esc, false)
}
