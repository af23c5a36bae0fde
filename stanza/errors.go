package stanza

import (
	"strconv"
	"unicode/utf8"
)

// Reason is the stable, machine-readable class of an item that cannot be
// sent. It is used as a metric label and as the x-xmppgw-error header.
type Reason string

// The reasons an item is refused.
const (
	ReasonInvalidJSON   Reason = "invalid_json"     // body is not one JSON object
	ReasonInvalidUTF8   Reason = "invalid_utf8"     // body is not valid UTF-8
	ReasonInvalidChar   Reason = "invalid_xml_char" // a string holds a character XML 1.0 cannot carry
	ReasonMissingField  Reason = "missing_field"    // a required field is absent
	ReasonBadField      Reason = "bad_field"        // a field has the wrong type or value
	ReasonBadJID        Reason = "bad_jid"          // target or from is not a valid JID
	ReasonTooLong       Reason = "text_too_long"    // text (or subject, status, payload) over its bound
	ReasonForbiddenFrom Reason = "forbidden_from"   // from is not ours to use
	ReasonBadStanza     Reason = "bad_stanza"       // the raw stanza is malformed or not allowed
	ReasonTooLarge      Reason = "stanza_too_large" // the encoded stanza is over Options.MaxStanzaBytes
)

// ItemError is the error Encoder.Append returns for an item that can never be
// sent. Detail goes into logs and a dead-letter header: it may name fields,
// offsets, element and attribute names and quote short excerpts of fields
// that are not content (target, from, type, kind, show, id, enqueued_at),
// but never text, subject, thread, status or payload, nor character data or
// attribute values of a raw stanza other than its type and addresses.
type ItemError struct {
	Reason Reason
	Detail string
}

// Error returns the reason and the detail.
func (e *ItemError) Error() string { return string(e.Reason) + ": " + e.Detail }

func itemErr(r Reason, detail string) *ItemError { return &ItemError{Reason: r, Detail: detail} }

func tooLarge(max int) *ItemError {
	return itemErr(ReasonTooLarge, "the encoded stanza is over the limit of "+strconv.Itoa(max)+" bytes")
}

// excerptLen bounds the quoted excerpts in error details.
const excerptLen = 40

// errExcerpt is err's text cut to 2×excerptLen bytes (at a UTF-8
// boundary): a library's error may quote the whole input (the IDNA one
// quotes every label), and details stay short.
func errExcerpt(err error) string {
	s := err.Error()
	if len(s) <= 2*excerptLen {
		return s
	}
	s = s[:2*excerptLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// excerpt quotes at most excerptLen bytes of b for an error detail.
func excerpt[T string | []byte](b T) string {
	s := string(b)
	if len(s) > excerptLen {
		return strconv.Quote(s[:excerptLen]) + "…"
	}
	return strconv.Quote(s)
}

// DecodeError is the error DecodeMessage and DecodePresence return for a
// stanza the gateway refuses. The caller answers the sender with a stanza
// error of this Type and Condition (RFC 6120 §8.3.3); Text is a short
// human-readable explanation.
type DecodeError struct {
	Type      string // error type: "modify" for all errors decoding makes
	Condition string // defined condition: bad-request, policy-violation, not-acceptable
	Text      string
}

// Error returns the condition and the text.
func (e *DecodeError) Error() string { return "stanza: " + e.Condition + ": " + e.Text }

func decodeErr(cond, text string) *DecodeError {
	return &DecodeError{Type: "modify", Condition: cond, Text: text}
}
