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

// rawElem is an open element while re-encoding a raw stanza.
type rawElem struct {
	name  xml.Name // raw (prefix, local) as written in the input
	ns    string   // resolved namespace
	decls int      // len(scope) before this element's declarations
}

// appendRaw re-encodes the item's raw `stanza` member.
func (e *Encoder) appendRaw(dst, body []byte, it *item, m *Meta, info Info) ([]byte, Info, *ItemError) {
	if _, ok := checkJSONString(it.stanza.raw, it.stanza.esc); !ok {
		return nil, info, itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
	}
	src := appendJSONString(nil, it.stanza.raw, it.stanza.esc)
	streamNS := nsComponent
	if e.o.Mode == ModeClient {
		streamNS = nsClient
	}
	bad := func(msg string) *ItemError { return itemErr(ReasonBadStanza, msg) }
	n0 := len(dst)

	d := xml.NewDecoder(bytes.NewReader(src))
	d.Strict = true
	var (
		scope    []nsDecl
		stack    []rawElem
		open     bool // a start tag is written but not yet closed with '>'
		done     bool // the root element has ended
		bodyLen  int
		inBody   bool
		haveRoot bool
	)
	lookup := func(prefix string) (string, bool) {
		for i := len(scope) - 1; i >= 0; i-- {
			if scope[i].prefix == prefix {
				return scope[i].uri, true
			}
		}
		if prefix == "" {
			return streamNS, true
		}
		return "", false
	}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, info, bad(syntaxDetail(err, d.InputOffset()))
		}
		if len(dst)-n0 > e.maxStanza {
			return nil, info, tooLarge(e.maxStanza)
		}
		switch t := tok.(type) {
		case xml.Comment:
			// dropped
		case xml.ProcInst, xml.Directive:
			return nil, info, bad("processing instructions and directives are not allowed")
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					if done {
						return nil, info, bad("trailing content after the element")
					}
					return nil, info, bad("text outside the element")
				}
				continue
			}
			if !validXMLString(string(t)) {
				return nil, info, itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
			}
			if inBody && len(stack) == 2 {
				bodyLen += len(t)
				if bodyLen > e.maxText {
					return nil, info, itemErr(ReasonTooLong, "body of the stanza is over the limit of "+strconv.Itoa(e.maxText))
				}
			}
			if open {
				dst = append(dst, '>')
				open = false
			}
			dst = appendEsc(dst, []byte(t), false)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, info, bad("unexpected end element")
			}
			top := stack[len(stack)-1]
			if t.Name != top.name {
				return nil, info, bad("mismatched end element")
			}
			stack = stack[:len(stack)-1]
			scope = scope[:top.decls]
			if open {
				dst = append(dst, "/>"...)
				open = false
			} else {
				dst = append(dst, "</"...)
				dst = append(dst, top.name.Local...)
				dst = append(dst, '>')
			}
			inBody = false
			if len(stack) == 0 {
				done = true
			}
		case xml.StartElement:
			if done {
				return nil, info, bad("trailing content: more than one element")
			}
			if len(stack) >= maxRawDepth {
				return nil, info, bad("nested too deeply")
			}
			if open {
				dst = append(dst, '>')
				open = false
			}
			if !qName(t.Name) {
				return nil, info, bad("element name " + excerpt(rawName(t.Name)) + " is not an ASCII XML name with at most one colon")
			}
			if len(t.Attr) > maxRawAttrs {
				return nil, info, bad("more than " + strconv.Itoa(maxRawAttrs) + " attributes on one element")
			}
			mark := len(scope)
			for i, a := range t.Attr {
				if !qName(a.Name) {
					return nil, info, bad("attribute name " + excerpt(rawName(a.Name)) + " is not an ASCII XML name with at most one colon")
				}
				for _, b := range t.Attr[:i] {
					if b.Name == a.Name {
						return nil, info, bad("duplicate attribute " + excerpt(rawName(a.Name)))
					}
				}
				if strings.ContainsAny(a.Value, "\t\n\r") {
					// An XML parser reads a literal tab or line break in an
					// attribute value as a space; the decoder has already
					// replaced character references, so the two cannot be
					// told apart: refuse rather than change the meaning.
					return nil, info, bad("attribute " + excerpt(rawName(a.Name)) + " holds a tab or line break")
				}
				switch {
				case a.Name.Space == "xmlns":
					if a.Value == "" || a.Name.Local == "xml" || a.Name.Local == "xmlns" || a.Value == nsXML || a.Value == nsXMLNS {
						return nil, info, bad("invalid namespace declaration of prefix " + excerpt(a.Name.Local))
					}
					scope = append(scope, nsDecl{a.Name.Local, a.Value})
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					v := a.Value
					if v == nsXML || v == nsXMLNS {
						return nil, info, bad("invalid default namespace declaration")
					}
					if len(stack) == 0 {
						if v != "" && v != nsClient && v != nsComponent {
							return nil, info, bad("the element's namespace must be jabber:client or jabber:component:accept")
						}
						v = streamNS
					}
					scope = append(scope, nsDecl{"", v})
				}
			}
			ns, ok := lookup(t.Name.Space)
			if !ok || t.Name.Space == "xmlns" || t.Name.Space == "xml" {
				return nil, info, bad("undeclared namespace prefix " + excerpt(t.Name.Space))
			}
			if ns == nsStream {
				return nil, info, bad("stream elements are not allowed")
			}
			parentNS := streamNS
			if len(stack) == 0 {
				if haveRoot {
					return nil, info, bad("more than one element")
				}
				haveRoot = true
				if ns != streamNS && ns != nsClient && ns != nsComponent && ns != "" {
					return nil, info, bad("the element's namespace must be jabber:client or jabber:component:accept")
				}
				if t.Name.Local != "message" && t.Name.Local != "presence" {
					return nil, info, bad("the element must be message or presence, got " + excerpt(t.Name.Local))
				}
				ns = streamNS
				info.Kind = "message"
				if t.Name.Local == "presence" {
					info.Kind = "presence"
				}
			} else {
				parentNS = stack[len(stack)-1].ns
			}
			if ns == "" {
				// xmlns='' undeclares the default namespace: not representable
				return nil, info, bad("empty namespace declarations are not allowed")
			}
			stack = append(stack, rawElem{name: t.Name, ns: ns, decls: mark})
			inBody = len(stack) == 2 && t.Name.Local == "body" && ns == streamNS

			dst = append(dst, '<')
			dst = append(dst, t.Name.Local...)
			if ns != parentNS {
				dst = appendAttr(dst, " xmlns='", ns)
			}
			var ierr *ItemError
			if len(stack) == 1 {
				dst, ierr = e.rawRootAttrs(dst, body, t.Attr, m, &info, lookup)
			} else {
				dst, ierr = appendRawAttrs(dst, t.Attr, lookup)
			}
			if ierr != nil {
				return nil, info, ierr
			}
			open = true
		}
	}
	if !done {
		if !haveRoot {
			return nil, info, bad("no element")
		}
		return nil, info, bad("unexpected end of the element")
	}
	return dst, info, nil
}

// appendRawAttrs writes the attributes of a child element. Namespaced
// attributes get generated prefixes declared on the element itself.
// The attribute names of attrs are unique (checked by the caller); their
// expanded names (namespace, local name) must be too, since two prefixes
// bound to one namespace would otherwise name the same attribute twice.
func appendRawAttrs(dst []byte, attrs []xml.Attr, lookup func(string) (string, bool)) ([]byte, *ItemError) {
	var prefixes []string // uri of generated prefix a<i>
	for i, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if !validXMLString(a.Value) {
			return nil, itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
		}
		switch a.Name.Space {
		case "":
			dst = append(dst, ' ')
			dst = append(dst, a.Name.Local...)
		case "xml":
			dst = append(dst, " xml:"...)
			dst = append(dst, a.Name.Local...)
		default:
			uri, ok := lookup(a.Name.Space)
			if !ok || a.Name.Space == "" {
				return nil, itemErr(ReasonBadStanza, "undeclared namespace prefix "+excerpt(a.Name.Space))
			}
			for _, b := range attrs[:i] {
				if b.Name.Local != a.Name.Local || b.Name.Space == "" || b.Name.Space == "xml" || b.Name.Space == "xmlns" {
					continue
				}
				if u, _ := lookup(b.Name.Space); u == uri {
					return nil, itemErr(ReasonBadStanza, "attribute "+excerpt(a.Name.Local)+" twice in one namespace")
				}
			}
			p := -1
			for j, u := range prefixes {
				if u == uri {
					p = j
				}
			}
			if p < 0 {
				p = len(prefixes)
				prefixes = append(prefixes, uri)
				dst = append(dst, " xmlns:a"...)
				dst = strconv.AppendInt(dst, int64(p), 10)
				dst = appendAttr(dst, "='", uri)
			}
			dst = append(dst, " a"...)
			dst = strconv.AppendInt(dst, int64(p), 10)
			dst = append(dst, ':')
			dst = append(dst, a.Name.Local...)
		}
		dst = appendAttr(dst, "='", a.Value)
	}
	return dst, nil
}

// rawRootAttrs checks and writes the attributes of the raw stanza's element.
func (e *Encoder) rawRootAttrs(dst, body []byte, attrs []xml.Attr, m *Meta, info *Info, lookup func(string) (string, bool)) ([]byte, *ItemError) {
	var from, to, id, typ *xml.Attr
	for i := range attrs {
		a := &attrs[i]
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from = a
		case "to":
			to = a
		case "id":
			id = a
		case "type":
			typ = a
		}
	}
	if typ != nil {
		ok := false
		if info.Kind == "message" {
			switch typ.Value {
			case "chat", "normal", "headline", "groupchat", "error":
				ok = true
			}
		} else {
			switch typ.Value {
			case "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
				ok = true
			}
		}
		if !ok {
			return nil, itemErr(ReasonBadStanza, "bad type "+excerpt(typ.Value))
		}
	}
	presence := info.Kind == "presence"
	if presence {
		info.PresenceType = "available"
		if typ != nil {
			info.PresenceType = typ.Value
		}
	}
	if from != nil {
		f, err := e.checkFrom([]byte(from.Value), false)
		if err != nil {
			return nil, err
		}
		dst = appendAttr(dst, " from='", f)
		if presence {
			info.From = string(f)
		}
	} else if e.o.Mode == ModeComponent {
		dst = appendAttr(dst, " from='", e.defaultFrom)
		if presence {
			info.From = string(e.defaultFrom)
		}
	}
	if to != nil {
		canon, err := canonJID([]byte(to.Value))
		if err != nil {
			return nil, itemErr(ReasonBadJID, "to "+excerpt(to.Value)+": "+err.Error())
		}
		dst = appendAttr(dst, " to='", canon)
		if presence {
			info.To = string(canon)
		}
	}
	if id != nil {
		if id.Value == "" || len(id.Value) > maxIDBytes {
			return nil, itemErr(ReasonBadStanza, "bad id")
		}
		info.ID = id.Value
	} else {
		var err *ItemError
		info.ID, err = e.stanzaID(dst, body, jstr{}, m)
		if err != nil {
			return nil, err
		}
	}
	dst = appendAttr(dst, " id='", info.ID)
	var rest []xml.Attr
	for i := range attrs {
		a := &attrs[i]
		if a == from || a == to || a == id {
			continue
		}
		rest = append(rest, *a)
	}
	return appendRawAttrs(dst, rest, lookup)
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
