package harness

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
)

// Namespaces of the stanzas a Client reads.
const (
	nsClient = "jabber:client"
	nsJSON   = "urn:xmpp:json:0"
	nsDelay  = "urn:xmpp:delay"
	nsStanza = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// serve is the client's reading goroutine: it runs the session until the
// stream ends, then records why and closes the delivery channels.
func (c *Client) serve() {
	err := c.s.Serve(xmpp.HandlerFunc(c.handle))
	select {
	case <-c.closing:
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
			err = nil
		}
	default:
		if err == nil {
			err = io.EOF // the server closed the stream
		}
	}
	c.err = err
	close(c.msgs)
	close(c.pres)
	close(c.done)
}

// handle reads one stanza and delivers it: messages and presences to their
// channels, IQ replies to the SendIQ waiting for them.
func (c *Client) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := readStanza(r, start)
	if err != nil {
		return err
	}
	switch start.Name.Local {
	case "message":
		m := Msg{ID: st.id, From: st.from, To: st.to, Type: st.typ, Body: st.body, Subject: st.subject,
			Thread: st.thread, JSON: st.json, HasJSON: st.hasJSON, Delayed: st.delayed, Error: st.cond, Raw: st.raw}
		select {
		case c.msgs <- m:
		case <-c.closing:
		}
	case "presence":
		p := Presence{ID: st.id, From: st.from, To: st.to, Type: st.typ, Show: st.show, Status: st.status, Error: st.cond, Raw: st.raw}
		select {
		case c.pres <- p:
		case <-c.closing:
		}
	case "iq":
		if st.typ == "result" || st.typ == "error" {
			c.deliverReply(st.id, st.raw)
		}
		// get/set: mellium answers service-unavailable.
	}
	return nil
}

// stanzaInfo is what readStanza extracts.
type stanzaInfo struct {
	id, from, to, typ                   string
	body, subject, thread, show, status string
	json                                string
	hasJSON, delayed                    bool
	cond                                string
	raw                                 string
}

// readStanza reads the rest of the stanza that start opens, re-serialises
// it and picks out the fields tests look at.
func readStanza(r xml.TokenReader, start *xml.StartElement) (stanzaInfo, error) {
	sr := stanzaReader{root: start.Name, depth: 1}
	sr.rootAttrs(start.Attr)
	sr.nss = []string{nsClient}
	writeStart(&sr.raw, *start, nsClient)
	sr.nss = append(sr.nss, start.Name.Space)
	for sr.depth > 0 {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sr.st, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			sr.startElement(t)
		case xml.EndElement:
			sr.endElement(t)
		case xml.CharData:
			sr.charData(t)
		}
	}
	if sr.depth > 0 {
		// InnerElement may stop before the end element: close the root.
		sr.raw.WriteString("</")
		sr.raw.WriteString(start.Name.Local)
		sr.raw.WriteByte('>')
	}
	sr.st.raw = sr.raw.String()
	return sr.st, nil
}

// stanzaReader is the state of readStanza between tokens.
type stanzaReader struct {
	st   stanzaInfo
	root xml.Name // of the stanza
	raw  strings.Builder
	// nss is the namespace of each open element, the stream's first.
	nss   []string
	depth int // 1: inside the stanza, 2: inside one of its children
	// child is the direct child of the stanza being read, text collects
	// its character data; inError is set inside an <error/> child.
	child   xml.Name
	inError bool
	text    strings.Builder
}

// rootAttrs picks the stanza's own attributes.
func (sr *stanzaReader) rootAttrs(attrs []xml.Attr) {
	for _, a := range attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			sr.st.id = a.Value
		case "from":
			sr.st.from = a.Value
		case "to":
			sr.st.to = a.Value
		case "type":
			sr.st.typ = a.Value
		}
	}
}

func (sr *stanzaReader) startElement(t xml.StartElement) {
	writeStart(&sr.raw, t, sr.nss[len(sr.nss)-1])
	sr.nss = append(sr.nss, t.Name.Space)
	sr.depth++
	switch sr.depth {
	case 2:
		sr.child = t.Name
		sr.text.Reset()
		switch {
		case t.Name.Local == "json" && t.Name.Space == nsJSON:
			sr.st.hasJSON = true
		case t.Name.Local == "delay" && t.Name.Space == nsDelay:
			sr.st.delayed = true
		case t.Name.Local == "error":
			sr.inError = true
		}
	case 3:
		if sr.inError && t.Name.Space == nsStanza && t.Name.Local != "text" {
			sr.st.cond = t.Name.Local
		}
	}
}

func (sr *stanzaReader) endElement(t xml.EndElement) {
	sr.depth--
	sr.nss = sr.nss[:len(sr.nss)-1]
	sr.raw.WriteString("</")
	sr.raw.WriteString(t.Name.Local)
	sr.raw.WriteByte('>')
	if sr.depth == 1 {
		sr.childEnded()
	}
}

// childEnded keeps the text of the direct child that just ended if it is
// one tests look at.
func (sr *stanzaReader) childEnded() {
	s := sr.text.String()
	switch child := sr.child; {
	case child.Space == nsJSON && child.Local == "json":
		sr.st.json = s
	case child.Space != sr.root.Space:
	case child.Local == "body":
		sr.st.body = s
	case child.Local == "subject":
		sr.st.subject = s
	case child.Local == "thread":
		sr.st.thread = s
	case child.Local == "show":
		sr.st.show = s
	case child.Local == "status":
		sr.st.status = s
	case child.Local == "error":
		sr.inError = false
	}
}

func (sr *stanzaReader) charData(t xml.CharData) {
	_ = xml.EscapeText(&sr.raw, t)
	if sr.depth == 2 {
		sr.text.Write(t)
	}
}
