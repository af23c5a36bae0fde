package stanza

import (
	"bytes"
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

	// Receipt: a message item that asked for a receipt (receipt: true);
	// To is then set to the target as written, so that answers can be
	// told from strangers'.
	Receipt bool
	// Groupchat: a message item of type groupchat; To is then set to the
	// target as written (the room).
	Groupchat bool
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
			it.subject.set || it.thread.set || it.kind.set || it.status.set || it.show.set || it.id.set ||
			it.replace.set || it.receiptSet {
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
		return nil, itemErr(ReasonBadJID, "target "+excerpt(t)+": "+errExcerpt(jerr))
	}
	return canon, nil
}

// sender validates the item's from member (component: localpart or JID of
// our domain; client: the account's JID) and returns the from to write, or
// nil for none.
func (e *Encoder) sender(f jstr) ([]byte, *ItemError) {
	if !f.nonEmpty() {
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
			return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+errExcerpt(err))
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
			return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+errExcerpt(err))
		}
		return []byte(j.String()), nil
	}
	canon, err := canonJID(s)
	if err != nil {
		return nil, itemErr(ReasonBadJID, "from "+excerpt(s)+": "+errExcerpt(err))
	}
	_, d, _ := splitJID(canon)
	if string(d) != e.domain {
		return nil, itemErr(ReasonForbiddenFrom, "from "+excerpt(s)+" is outside "+e.domain)
	}
	return canon, nil
}

// appendAttr appends ` name='value'` where open is ` name='`.
func appendAttr[T string | []byte](dst []byte, open string, v T) []byte {
	dst = append(dst, open...)
	dst = appendEsc(dst, v, true)
	return append(dst, '\'')
}

// appendJstr appends the decoded string member f escaped as character data.
func appendJstr(dst []byte, f jstr) []byte {
	if f.plain {
		return append(dst, f.raw...)
	}
	return appendJSONStringXML(dst, f.raw, f.esc, false)
}
