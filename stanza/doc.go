// Package stanza turns bytes into bytes: outbound items (JSON) into XMPP
// stanzas, inbound stanzas into events (JSON), plus pings and error replies.
// It is pure: no I/O, no goroutines, no clocks (times are passed in), no
// global random state.
//
// # Outbound items
//
// Encoder.Append takes one AMQP message body, a JSON object (see README.md
// "Outbound items"), and appends the stanza to a caller's buffer with
// hand-built, escaped bytes, allocating nothing on the common path but the
// returned id string. The body is checked in this order:
//
//   - not valid UTF-8: ReasonInvalidUTF8;
//   - not exactly one JSON object (whitespace around it allowed):
//     ReasonInvalidJSON. The object is scanned by a validating scanner
//     (fuzzed against encoding/json). Member names are matched exactly,
//     case-sensitively, after unescaping; unknown members are ignored; null
//     counts as absent; a repeated member: the last one wins. A known member
//     of the wrong JSON type: ReasonBadField;
//   - a string member with a character XML 1.0 cannot carry (C0 controls
//     other than tab, LF, CR, incl. \b and \f escapes; U+FFFE, U+FFFF; lone
//     surrogate escapes): ReasonInvalidChar. The payload is carried as JSON
//     text, so only raw U+FFFE/U+FFFF in it are refused;
//   - enqueued_at not RFC 3339: ReasonBadField;
//   - `stanza` with any of target, text, payload, type, from, subject, thread,
//     kind, id, status, show, receipt, replace: ReasonBadField; otherwise the raw stanza is
//     parsed with encoding/xml and re-encoded (see below);
//   - kind other than message or presence, type outside its set, show
//     outside away/chat/dnd/xa, an id over 1023 bytes, receipt other than
//     true/false, replace empty, over 1023 bytes or equal to the message's
//     own id, receipt or replace on a presence: ReasonBadField;
//   - a message without target, or without all of text, payload and
//     subject: ReasonMissingField (target is also required for presence in
//     component mode and for subscription presences);
//   - target (or from) not a JID per mellium.im/xmpp/jid: ReasonBadJID. Plain
//     lower-case ASCII JIDs take a fast path proven equivalent by
//     FuzzFastJID; others are parsed by jid.Parse and written canonical;
//   - from outside the component's domain (component mode; a bare localpart
//     means localpart@domain, the domain itself is allowed) or other than the
//     account's bare or full JID (client mode): ReasonForbiddenFrom;
//   - text, subject or status over Options.MaxTextBytes, payload over
//     Options.MaxPayloadBytes: ReasonTooLong;
//   - the encoded stanza (every byte Append writes for the item, after
//     escaping, which grows "&" five-fold) over Options.MaxStanzaBytes
//     (DefaultMaxStanzaBytes, 240 KiB, when 0): ReasonTooLarge.
//
// On every error dst is returned unchanged. ItemError.Detail goes to logs
// and the dead-letter header: it names fields, offsets, element and
// attribute names and quotes short excerpts of non-content fields (target,
// from, type, kind, show, id, enqueued_at), never text, subject, thread,
// status, payload, nor a raw stanza's character data.
//
// The stanza id is item.id, else the AMQP message-id, else the first 16 bytes
// of SHA-256 (hex) over the body and the AMQP properties that survive
// redelivery (correlation-id, type, app-id, user-id, content-type,
// timestamp), so a redelivered item gets the same id.
//
// A message ends with, in order: a XEP-0184 <request/> (not in groupchat)
// and XEP-0333 <markable/> when receipt is true, a XEP-0308 <replace/>, and
// always a XEP-0359 <origin-id/> equal to the stanza id (a raw message gets
// one unless it carries its own). Info.Receipt reports a receipt request,
// with Info.To the target as written.
//
// Stanzas are written without an xmlns attribute: they inherit the stream's
// default namespace (jabber:component:accept or jabber:client). Attribute
// values escape & < > " ' and tab, LF, CR; character data escapes & < > and
// CR. The payload is written as <json xmlns='urn:xmpp:json:0'> (XEP-0335)
// holding the JSON text as character data.
//
// # Raw stanzas
//
// A `stanza` member must hold exactly one <message/> or <presence/> element
// in no namespace, jabber:client or jabber:component:accept (normalised to
// the stream's); anything else — another element, a second element, text,
// processing instructions or a DOCTYPE around it, stream elements, an
// undeclared prefix, a malformed document — is ReasonBadStanza. Comments
// are dropped.
//
// The stanza is read with encoding/xml, which accepts more than the
// namespace-aware parsers of XMPP servers (expat), so these are refused
// too (ReasonBadStanza): element and attribute names that are not ASCII
// NCNames with at most one prefix ("x:", ":x", "a:b:c", non-ASCII names);
// an attribute twice on an element, by name (declarations included) or by
// namespace and local name (two prefixes bound to one namespace); a
// declaration of the xml or xmlns prefix, of an empty prefix binding
// (an empty xmlns:p value), or of the XML or XMLNS namespace (by a prefix or as the
// default); a tab or line break in an attribute value, literal or as a
// character reference (a parser reads a literal one as a space, and the
// two cannot be told apart once decoded); more than 64 attributes on one
// element or more than 64 levels of elements; entity references other
// than the five predefined ones. FuzzRawStanza checks every accepted
// stanza against a strict oracle (stanza/internal/xmlstrict) and that the
// re-encoded children mean what the item's did. from is checked like an item's (no bare localpart) and
// defaults to Options.DefaultFrom; to must be a valid JID; type must be one
// the element allows. Children in other namespaces are re-encoded with their
// xmlns declarations; prefixed attributes get generated prefixes.
//
// # Inbound
//
// DecodeMessage and DecodePresence read a stanza from a token stream within
// Limits and always to its end; Event.AppendJSON writes an event. A message
// carrying a receipt or chat marker and no body is a "receipt" event; a
// correction's event has Replace; an OMEMO or OpenPGP message has
// Encrypted and no Text; WantsReceipt marks a message to answer with
// AppendReceipt once its event is queued.
//
// MessageDecoder reads the common shapes of a whole <message/> held in
// memory straight from its bytes, with one allocation for the event's
// strings, and returns ErrNotFast for anything else (or anything
// DecodeMessage would refuse): the caller then reads the same bytes with
// DecodeMessage over encoding/xml, so the result never depends on which
// path read it. FuzzDecodeMessageBytes holds the two to the same event.
package stanza
