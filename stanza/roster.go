package stanza

import (
	"encoding/xml"
	"fmt"
	"io"
	"unicode/utf8"
)

// NSRoster is the namespace of the roster query (RFC 6121 §2).
const NSRoster = "jabber:iq:roster"

// Bounds of DecodeRoster. A roster is sent by the account's own server, but
// it holds JIDs that anybody can choose (a subscription request adds one),
// so what the gateway keeps of it is bounded all the same.
const (
	MaxRosterItems    = 10_000  // items kept; later ones are ignored
	MaxRosterJIDBytes = 3071    // a JID longer than this (RFC 7622 §3.1) is skipped
	MaxRosterBytes    = 4 << 20 // JID bytes kept in all; past them items are ignored
)

// RosterItem is one item of a roster result or push.
type RosterItem struct {
	JID          string // as the server sent it (normally a bare JID)
	Subscription string // none, to, from, both or remove
}

// Subscription states, shared by every decoded item (no allocation per item).
const (
	subNone   = "none"
	subTo     = "to"
	subFrom   = "from"
	subBoth   = "both"
	subRemove = "remove"
)

// DecodeRoster reads the rest of one <query xmlns='jabber:iq:roster'/>
// whose start element has been read: r yields its children and its end
// element (the shape an IQ handler gives after reading the payload's start).
// It always consumes the query to its end, keeping no more than the bounds
// above, so the stream stays usable.
//
// Items are the <item/> children in NSRoster with their jid and subscription
// attributes (RFC 6121 §2.1.2.5: absent means none); ask, name and groups
// are ignored. An item without a jid, with a jid over MaxRosterJIDBytes or
// not UTF-8, or with an unknown subscription is skipped.
//
// A start element other than the roster query is a *DecodeError
// (bad-request); more than MaxRosterItems items or MaxRosterBytes of JIDs,
// or elements nested deeper than DefaultMaxDepth, a *DecodeError
// (policy-violation) returned together with the items kept before the
// bound. An error of the reader is returned wrapped (ErrUnexpectedEOF at end
// of input): the stream is then unusable.
func DecodeRoster(start xml.StartElement, r xml.TokenReader) ([]RosterItem, error) {
	var (
		items []RosterItem
		size  int
		derr  *DecodeError
	)
	if start.Name.Space != NSRoster || start.Name.Local != "query" {
		derr = decodeErr("bad-request", "not a roster query")
	}
	for depth := 1; depth > 0; {
		tok, err := r.Token()
		if err != nil {
			if err == io.EOF {
				return items, ErrUnexpectedEOF
			}
			return items, fmt.Errorf("stanza: reading roster: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth-1 > DefaultMaxDepth && derr == nil {
				derr = decodeErr("policy-violation", "elements nested too deeply")
			}
			if depth != 2 || derr != nil || t.Name.Space != NSRoster || t.Name.Local != "item" {
				continue
			}
			it, ok := rosterItem(&t)
			if !ok {
				continue
			}
			if len(items) >= MaxRosterItems || size+len(it.JID) > MaxRosterBytes {
				derr = decodeErr("policy-violation", fmt.Sprintf("roster over the limit of %d items or %d bytes", MaxRosterItems, MaxRosterBytes))
				continue
			}
			size += len(it.JID)
			items = append(items, it)
		case xml.EndElement:
			depth--
		}
	}
	if derr != nil {
		return items, derr
	}
	return items, nil
}

// rosterItem reads the attributes of one <item/>.
func rosterItem(start *xml.StartElement) (RosterItem, bool) {
	it := RosterItem{Subscription: subNone}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "jid":
			it.JID = a.Value
		case "subscription":
			switch a.Value { // the shared constants, not the decoder's strings
			case subNone:
				it.Subscription = subNone
			case subTo:
				it.Subscription = subTo
			case subFrom:
				it.Subscription = subFrom
			case subBoth:
				it.Subscription = subBoth
			case subRemove:
				it.Subscription = subRemove
			default:
				return it, false
			}
		}
	}
	if it.JID == "" || len(it.JID) > MaxRosterJIDBytes || !utf8.ValidString(it.JID) {
		return it, false
	}
	return it, true
}
