package stanza

import (
	"encoding/xml"
	"strconv"
)

// Presence is a decoded presence stanza.
type Presence struct {
	From, To, ID string
	Type         string // "available" when the stanza has no type attribute
	Show, Status string
	Priority     int
	// Error is the defined condition of a type='error' presence (the first
	// child of <error> in urn:ietf:params:xml:ns:xmpp-stanzas).
	Error string
	// MUC is what a XEP-0045 room says in <x xmlns='…muc#user'>; nil when
	// the presence has none.
	MUC *MUCUser
}

// MUCUser is the XEP-0045 muc#user extension of a presence from a room.
type MUCUser struct {
	Codes       []int  // status codes (110 self-presence, 201 created, 210 nick assigned, 301 banned, 307 kicked, …), at most maxMUCCodes
	Affiliation string // of the occupant: owner, admin, member, outcast, none
	Role        string // moderator, participant, visitor, none
	Destroyed   bool   // the room was destroyed (<destroy/>)
}

// Has reports whether code is among the status codes.
func (m *MUCUser) Has(code int) bool {
	for _, c := range m.Codes {
		if c == code {
			return true
		}
	}
	return false
}

// maxMUCCodes bounds the status codes kept of one presence.
const maxMUCCodes = 16

// nsMUCUser is the namespace of XEP-0045's <x/> in room presence.
const nsMUCUser = "http://jabber.org/protocol/muc#user"

// DecodePresence reads the rest of one <presence/> whose start element has
// been read, like DecodeMessage. Show, Status and Priority come from the
// first such children in the stanza's namespace; a priority that is not an
// integer in -128..127 is a bad-request. Type is "available" when absent.
func DecodePresence(start xml.StartElement, r xml.TokenReader, lim Limits) (Presence, error) {
	var p Presence
	p.From, p.To, p.ID, p.Type = attrs(&start)
	if p.Type == "" {
		p.Type = "available"
	}
	pr := presenceReader{stanzaReader: stanzaReader{r: r, lim: lim.withDefaults(), depth: 1}, ns: start.Name.Space}
	pr.checkAttrs(p.From, p.To, p.ID)
	for pr.depth > 0 {
		tok, err := pr.next("presence")
		if err != nil {
			return p, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch pr.depth {
			case 2:
				pr.cur = pr.seen.first(pr.childKind(t.Name))
				if pr.cur == cMUCUser {
					p.MUC = &MUCUser{}
				}
			case 3:
				pr.grandchild(&t, &p)
			}
		case xml.EndElement:
			if pr.depth == 1 {
				pr.cur = cNone
			}
		case xml.CharData:
			pr.text(t)
		}
	}
	if pr.derr != nil {
		return p, pr.derr
	}
	err := pr.complete(&p)
	return p, err
}

// presenceReader collects what DecodePresence keeps of a presence: the
// first show, status and priority among its children.
type presenceReader struct {
	stanzaReader
	ns   string // the stanza's namespace
	seen kinds  // the kinds of children met
	cur  int    // kind of the child open at depth 2; cNone: not collected

	show, status, prio []byte
}

// grandchild reads an element inside the presence's error or muc#user
// child.
func (pr *presenceReader) grandchild(t *xml.StartElement, p *Presence) {
	switch {
	case pr.cur == cError && t.Name.Space == nsStanzas && t.Name.Local != "text":
		if p.Error == "" && p.Type == "error" {
			p.Error = t.Name.Local
		}
	case pr.cur == cMUCUser && t.Name.Space == nsMUCUser:
		switch t.Name.Local {
		case "status":
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "code" && len(p.MUC.Codes) < maxMUCCodes {
					if c, err := strconv.Atoi(a.Value); err == nil && c >= 100 && c <= 999 {
						p.MUC.Codes = append(p.MUC.Codes, c)
					}
				}
			}
		case "item":
			for _, a := range t.Attr {
				switch {
				case a.Name.Space != "":
				case a.Name.Local == "affiliation" && len(a.Value) <= 16:
					p.MUC.Affiliation = a.Value
				case a.Name.Local == "role" && len(a.Value) <= 16:
					p.MUC.Role = a.Value
				}
			}
		case "destroy":
			p.MUC.Destroyed = true
		}
	}
}

// childKind returns the kind of a child of the stanza named n.
func (pr *presenceReader) childKind(n xml.Name) int {
	if n.Space == nsMUCUser && n.Local == "x" {
		return cMUCUser
	}
	if !streamish(n.Space, pr.ns) {
		return cNone
	}
	switch n.Local {
	case "error":
		return cError
	case "show":
		return cShow
	case "status":
		return cStatus
	case "priority":
		return cPriority
	}
	return cNone
}

// text collects character data of a child being collected, within bounds.
func (pr *presenceReader) text(t xml.CharData) {
	if pr.depth != 2 {
		return
	}
	switch pr.cur {
	case cShow:
		pr.grow(&pr.show, t, 16, "show")
	case cStatus:
		pr.grow(&pr.status, t, pr.lim.MaxTextBytes, "status")
	case cPriority:
		pr.grow(&pr.prio, t, 16, "priority")
	}
}

// complete fills in the presence read without error.
func (pr *presenceReader) complete(p *Presence) error {
	p.Show = string(pr.show)
	p.Status = string(pr.status)
	if pr.seen.has(cPriority) {
		n, err := strconv.ParseInt(string(trimSpace(pr.prio)), 10, 8)
		if err != nil {
			return decodeErr("bad-request", "priority must be an integer from -128 to 127")
		}
		p.Priority = int(n)
	}
	return nil
}
