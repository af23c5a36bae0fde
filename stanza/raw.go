package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Namespaces the encoder and decoder know.
const (
	nsClient    = "jabber:client"
	nsComponent = "jabber:component:accept"
	nsStream    = "http://etherx.jabber.org/streams"
	nsStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsJSON      = "urn:xmpp:json:0"
	nsXML       = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS     = "http://www.w3.org/2000/xmlns/"
)

// maxRawDepth bounds the nesting of a raw stanza item, maxRawAttrs the
// attributes (declarations included) of one of its elements.
const (
	maxRawDepth = 64
	maxRawAttrs = 64
)

// nsDecl is one namespace declaration in scope while re-encoding.
type nsDecl struct {
	prefix, uri string
}

// nsScope resolves prefixes while re-encoding: the declarations in scope,
// innermost last. The default namespace is the stream's unless declared.
type nsScope struct {
	decls    []nsDecl
	streamNS string
}

func (s *nsScope) lookup(prefix string) (string, bool) {
	for i := len(s.decls) - 1; i >= 0; i-- {
		if s.decls[i].prefix == prefix {
			return s.decls[i].uri, true
		}
	}
	if prefix == "" {
		return s.streamNS, true
	}
	return "", false
}

// rawElem is an open element while re-encoding a raw stanza.
type rawElem struct {
	name  xml.Name // raw (prefix, local) as written in the input
	ns    string   // resolved namespace
	decls int      // len(scope) before this element's declarations
}

// appendRaw re-encodes the item's raw `stanza` member: one <message/> or
// <presence/>, written anew token by token (rawWriter) so that what goes out
// is what a namespace-aware parser reads, with its from, to and id checked
// like an item's.
func (e *Encoder) appendRaw(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	if _, ok := checkJSONString(it.stanza.raw, it.stanza.esc); !ok {
		return nil, info, itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
	}
	src := appendJSONString(nil, it.stanza.raw, it.stanza.esc)
	w := rawWriter{e: e, body: body, meta: *m, dst: dst, info: info}
	w.scope.streamNS = nsComponent
	if e.o.Mode == ModeClient {
		w.scope.streamNS = nsClient
	}
	n0 := len(dst)
	d := xml.NewDecoder(bytes.NewReader(src))
	d.Strict = true
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, info, badStanza(syntaxDetail(err, d.InputOffset()))
		}
		if len(w.dst)-n0 > e.maxStanza {
			return nil, info, tooLarge(e.maxStanza)
		}
		if ierr := w.token(tok); ierr != nil {
			return nil, info, ierr
		}
	}
	if !w.done {
		if !w.haveRoot {
			return nil, info, badStanza("no element")
		}
		return nil, info, badStanza("unexpected end of the element")
	}
	return w.dst, w.info, nil
}

// badStanza is the error for a raw stanza that is not one well-formed
// message or presence element.
func badStanza(msg string) *ItemError { return itemErr(ReasonBadStanza, msg) }

// rawWriter is appendRaw's state between tokens.
type rawWriter struct {
	e    *Encoder
	body []byte // the item, from which an id is derived
	// meta is a copy of the caller's: the methods store into w, so escape
	// analysis lets everything w points to escape, and a pointer would move
	// Append's Meta to the heap on every call.
	meta Meta
	dst  []byte
	info Info

	scope    nsScope
	stack    []rawElem
	open     bool // a start tag is written but not yet closed with '>'
	done     bool // the root element has ended
	haveRoot bool
	inBody   bool // inside the stanza's <body>
	bodyLen  int  // bytes of character data in <body>
	originID bool // the message has a XEP-0359 origin-id of its own
}

// token checks and writes one token of the input.
func (w *rawWriter) token(tok xml.Token) *ItemError {
	switch t := tok.(type) {
	case xml.Comment:
		// dropped
	case xml.ProcInst, xml.Directive:
		return badStanza("processing instructions and directives are not allowed")
	case xml.CharData:
		return w.charData(t)
	case xml.EndElement:
		return w.endElement(t.Name)
	case xml.StartElement:
		return w.startElement(&t)
	}
	return nil
}

// closeStartTag ends the start tag written last if it is still open: the
// element has content.
func (w *rawWriter) closeStartTag() {
	if w.open {
		w.dst = append(w.dst, '>')
		w.open = false
	}
}

func (w *rawWriter) charData(t xml.CharData) *ItemError {
	if len(w.stack) == 0 {
		if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
			if w.done {
				return badStanza("trailing content after the element")
			}
			return badStanza("text outside the element")
		}
		return nil
	}
	if !validXMLString(string(t)) {
		return itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
	}
	if w.inBody && len(w.stack) == 2 {
		w.bodyLen += len(t)
		if w.bodyLen > w.e.maxText {
			return itemErr(ReasonTooLong, "body of the stanza is over the limit of "+strconv.Itoa(w.e.maxText))
		}
	}
	w.closeStartTag()
	w.dst = appendEsc(w.dst, []byte(t), false)
	return nil
}

func (w *rawWriter) endElement(name xml.Name) *ItemError {
	if len(w.stack) == 0 {
		return badStanza("unexpected end element")
	}
	top := w.stack[len(w.stack)-1]
	if name != top.name {
		return badStanza("mismatched end element")
	}
	w.stack = w.stack[:len(w.stack)-1]
	w.scope.decls = w.scope.decls[:top.decls]
	if len(w.stack) == 0 && w.info.Kind == "message" && !w.originID {
		// Every message carries an origin-id equal to its stanza id
		// (XEP-0359), unless the worker wrote one.
		w.closeStartTag()
		w.dst = appendOriginID(w.dst, w.info.ID)
		w.done = true
		return nil
	}
	if w.open {
		w.dst = append(w.dst, "/>"...)
		w.open = false
	} else {
		w.dst = append(w.dst, "</"...)
		w.dst = append(w.dst, top.name.Local...)
		w.dst = append(w.dst, '>')
	}
	w.inBody = false
	if len(w.stack) == 0 {
		w.done = true
	}
	return nil
}

// startElement checks a start tag, brings its declarations into scope and
// writes it with its attributes, left open for its content.
func (w *rawWriter) startElement(t *xml.StartElement) *ItemError {
	if w.done {
		return badStanza("trailing content: more than one element")
	}
	if len(w.stack) >= maxRawDepth {
		return badStanza("nested too deeply")
	}
	w.closeStartTag()
	if !qName(t.Name) {
		return badStanza("element name " + excerpt(rawName(t.Name)) + " is not an ASCII XML name with at most one colon")
	}
	if len(t.Attr) > maxRawAttrs {
		return badStanza("more than " + strconv.Itoa(maxRawAttrs) + " attributes on one element")
	}
	mark := len(w.scope.decls)
	if err := w.declare(t.Attr); err != nil {
		return err
	}
	ns, parentNS, err := w.elementNS(t.Name)
	if err != nil {
		return err
	}
	w.stack = append(w.stack, rawElem{name: t.Name, ns: ns, decls: mark})
	w.inBody = len(w.stack) == 2 && t.Name.Local == "body" && ns == w.scope.streamNS
	if len(w.stack) == 2 && t.Name.Local == "origin-id" && ns == nsSID {
		w.originID = true
	}

	w.dst = append(w.dst, '<')
	w.dst = append(w.dst, t.Name.Local...)
	if ns != parentNS {
		w.dst = appendAttr(w.dst, " xmlns='", ns)
	}
	if len(w.stack) == 1 {
		err = w.rootAttrs(t.Attr)
	} else {
		w.dst, err = appendRawAttrs(w.dst, t.Attr, &w.scope)
	}
	if err != nil {
		return err
	}
	w.open = true
	return nil
}

// declare checks the attributes of a start tag (names, uniqueness, values)
// and brings its namespace declarations into scope. The stanza's own
// default namespace is always the stream's.
func (w *rawWriter) declare(attrs []xml.Attr) *ItemError {
	for i, a := range attrs {
		if err := checkRawAttr(attrs, i); err != nil {
			return err
		}
		switch {
		case a.Name.Space == "xmlns":
			if a.Value == "" || a.Name.Local == "xml" || a.Name.Local == "xmlns" || a.Value == nsXML || a.Value == nsXMLNS {
				return badStanza("invalid namespace declaration of prefix " + excerpt(a.Name.Local))
			}
			w.scope.decls = append(w.scope.decls, nsDecl{a.Name.Local, a.Value})
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			v := a.Value
			if v == nsXML || v == nsXMLNS {
				return badStanza("invalid default namespace declaration")
			}
			if len(w.stack) == 0 {
				if v != "" && v != nsClient && v != nsComponent {
					return badStanza("the element's namespace must be jabber:client or jabber:component:accept")
				}
				v = w.scope.streamNS
			}
			w.scope.decls = append(w.scope.decls, nsDecl{"", v})
		}
	}
	return nil
}

// checkRawAttr checks the name of attrs[i], that no earlier attribute has
// the same, and its value.
func checkRawAttr(attrs []xml.Attr, i int) *ItemError {
	a := &attrs[i]
	if !qName(a.Name) {
		return badStanza("attribute name " + excerpt(rawName(a.Name)) + " is not an ASCII XML name with at most one colon")
	}
	for _, b := range attrs[:i] {
		if b.Name == a.Name {
			return badStanza("duplicate attribute " + excerpt(rawName(a.Name)))
		}
	}
	if strings.ContainsAny(a.Value, "\t\n\r") {
		// An XML parser reads a literal tab or line break in an attribute
		// value as a space; the decoder has already replaced character
		// references, so the two cannot be told apart: refuse rather than
		// change the meaning.
		return badStanza("attribute " + excerpt(rawName(a.Name)) + " holds a tab or line break")
	}
	return nil
}

// elementNS resolves and checks the namespace of an element whose
// declarations are in scope, and returns it with its parent's (for the
// stanza's element: the stream's, which it always gets).
func (w *rawWriter) elementNS(name xml.Name) (ns, parentNS string, err *ItemError) {
	ns, ok := w.scope.lookup(name.Space)
	if !ok || name.Space == "xmlns" || name.Space == "xml" {
		return "", "", badStanza("undeclared namespace prefix " + excerpt(name.Space))
	}
	if ns == nsStream {
		return "", "", badStanza("stream elements are not allowed")
	}
	parentNS = w.scope.streamNS
	if len(w.stack) == 0 {
		if err := w.root(name, ns); err != nil {
			return "", "", err
		}
		ns = w.scope.streamNS
	} else {
		parentNS = w.stack[len(w.stack)-1].ns
	}
	if ns == "" {
		// xmlns='' undeclares the default namespace: not representable
		return "", "", badStanza("empty namespace declarations are not allowed")
	}
	return ns, parentNS, nil
}

// root checks the stanza's element, in namespace ns: the only one, a
// message or a presence in a stream namespace. It sets Info.Kind.
func (w *rawWriter) root(name xml.Name, ns string) *ItemError {
	if w.haveRoot {
		return badStanza("more than one element")
	}
	w.haveRoot = true
	if ns != w.scope.streamNS && ns != nsClient && ns != nsComponent && ns != "" {
		return badStanza("the element's namespace must be jabber:client or jabber:component:accept")
	}
	if name.Local != "message" && name.Local != "presence" {
		return badStanza("the element must be message or presence, got " + excerpt(name.Local))
	}
	w.info.Kind = "message"
	if name.Local == "presence" {
		w.info.Kind = "presence"
	}
	return nil
}

// qName reports whether n, as encoding/xml's RawToken splits a name, is a
// QName of ASCII NCNames: a local name, or a prefix and a local name. The
// decoder leaves names with a stray colon ("x:", ":x", "a:b:c") whole in
// Local; those are refused here, as a namespace-aware parser would refuse
// them. Non-ASCII names are refused too: XMPP uses none, and parsers
// disagree on which non-ASCII characters names may hold.
func qName(n xml.Name) bool {
	return ncName(n.Local) && (n.Space == "" || ncName(n.Space))
}

// ncName reports whether s is a non-empty NCName of ASCII characters.
func ncName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// rawName returns the name as written in the input.
func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// syntaxDetail describes a decoder error without quoting the input:
// encoding/xml's messages may hold character data (an entity's name, the
// text around a bad character).
func syntaxDetail(err error, off int64) string {
	var se *xml.SyntaxError
	msg := "malformed XML"
	if errors.As(err, &se) {
		switch {
		case strings.Contains(se.Msg, "entity"):
			msg = "malformed XML: an entity reference other than &amp; &lt; &gt; &quot; &apos; or a character reference"
		case strings.Contains(se.Msg, "character"), strings.Contains(se.Msg, "UTF-8"):
			msg = "malformed XML: a character XML cannot carry"
		case strings.Contains(se.Msg, "EOF"):
			msg = "malformed XML: unexpected end"
		}
	}
	return msg + " (near byte " + strconv.FormatInt(off, 10) + " of the stanza)"
}
