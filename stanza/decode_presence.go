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
}

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
			if pr.depth == 2 {
				pr.cur = pr.seen.first(pr.childKind(t.Name))
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

// childKind returns the kind of a child of the stanza named n.
func (pr *presenceReader) childKind(n xml.Name) int {
	if !streamish(n.Space, pr.ns) {
		return cNone
	}
	switch n.Local {
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
