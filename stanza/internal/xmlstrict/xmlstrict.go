// Package xmlstrict is a test oracle: a namespace-aware well-formedness
// checker for one XMPP stanza, at least as strict as expat (which Prosody and
// ejabberd use) together with XMPP's restricted XML (RFC 6120 §11.1).
//
// It is a small hand-written scanner and shares nothing with encoding/xml,
// whose leniency it exists to catch. It is stricter than expat where the
// encoder under test never needs the freedom: names are ASCII only, and CDATA
// sections are refused. It is meant for tests only.
package xmlstrict

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The namespaces XML reserves.
const (
	XMLNamespace   = "http://www.w3.org/XML/1998/namespace"
	XMLNSNamespace = "http://www.w3.org/2000/xmlns/"
)

// Options configure Check.
type Options struct {
	// StreamNS is the default namespace the stanza inherits from the stream
	// (jabber:client, jabber:component:accept); "" for none. No prefix is
	// inherited: a stanza must declare every prefix it uses.
	StreamNS string
	// MaxBytes bounds the input; 0 means no bound.
	MaxBytes int
}

// Attr is an attribute by expanded name.
type Attr struct {
	Space, Local, Value string
}

// Root describes the one element of a document that passed Check.
type Root struct {
	Space, Local string
	Attrs        []Attr // declarations excluded
}

// Attr returns the value of the attribute in no namespace named local.
func (r *Root) Attr(local string) (string, bool) {
	for _, a := range r.Attrs {
		if a.Space == "" && a.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Error is a violation found by Check.
type Error struct {
	Off int
	Msg string
}

func (e *Error) Error() string { return "xmlstrict: byte " + strconv.Itoa(e.Off) + ": " + e.Msg }

type decl struct{ prefix, uri string }

type open struct {
	qname string
	mark  int
}

type checker struct {
	b     []byte
	i     int
	scope []decl
	stack []open
	root  Root
	err   *Error

	rec  bool // record the canonical form
	out  strings.Builder
	text []byte
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = &Error{Off: c.i, Msg: fmt.Sprintf(format, args...)}
	}
}

// Check reports whether b is exactly one element, well-formed per XML 1.0
// and Namespaces in XML 1.0, within restricted XML:
//
//   - valid UTF-8 of XML 1.0 Chars only; no byte order mark;
//   - exactly one element and nothing before or after it (no whitespace,
//     no XML declaration);
//   - no DOCTYPE, processing instruction, comment or CDATA section;
//   - references: only &amp; &lt; &gt; &quot; &apos; and character
//     references to XML Chars; no "<" in attribute values, no "]]>" in
//     character data;
//   - names: ASCII QNames (NCName or NCName:NCName); whitespace between
//     attributes; end tags match;
//   - namespaces: every prefix bound (xml is predeclared, nothing else);
//     the xmlns prefix never used on elements nor declared; the xml
//     prefix bound only to its namespace; no other prefix nor the default
//     namespace bound to the XML or XMLNS namespace; no empty prefix
//     binding (an un-declaration, illegal in Namespaces in XML 1.0);
//   - attributes unique by qualified name and by expanded name;
//   - at most MaxBytes bytes.
func Check(b []byte, o Options) (Root, error) {
	c, err := check(b, o, false)
	if err != nil {
		return Root{}, err
	}
	return c.root, nil
}

// Canon checks b like Check and returns a canonical text of what a parser
// reads from it: one line per start element (expanded name, attributes
// sorted by expanded name, declarations left out), per run of character
// data (after end-of-line handling and references), per end element.
// Two documents with the same Canon mean the same to an XMPP server.
func Canon(b []byte, o Options) (string, error) {
	c, err := check(b, o, true)
	if err != nil {
		return "", err
	}
	return c.out.String(), nil
}

func check(b []byte, o Options, rec bool) (*checker, error) {
	if o.MaxBytes > 0 && len(b) > o.MaxBytes {
		return nil, &Error{Off: o.MaxBytes, Msg: fmt.Sprintf("%d bytes, over the limit of %d", len(b), o.MaxBytes)}
	}
	if !utf8.Valid(b) {
		return nil, &Error{Msg: "not valid UTF-8"}
	}
	c := &checker{b: b, rec: rec}
	c.scope = append(c.scope, decl{"xml", XMLNamespace}, decl{"", o.StreamNS})
	c.document()
	if c.err != nil {
		return nil, c.err
	}
	return c, nil
}

func (c *checker) flush() {
	if c.rec && len(c.text) > 0 {
		c.out.WriteString("T " + strconv.Quote(string(c.text)) + "\n")
		c.text = c.text[:0]
	}
}

func (c *checker) document() {
	if !c.startsWith("<") || c.startsWith("</") || c.startsWith("<!") || c.startsWith("<?") {
		c.fail("the document must start with an element")
		return
	}
	c.startTag()
	for c.err == nil && len(c.stack) > 0 {
		c.content()
	}
	if c.err == nil && c.i != len(c.b) {
		c.fail("content after the element")
	}
}

func (c *checker) startsWith(s string) bool {
	return len(c.b)-c.i >= len(s) && string(c.b[c.i:c.i+len(s)]) == s
}

// content scans one item of content inside an element.
func (c *checker) content() {
	if c.i >= len(c.b) {
		c.fail("unexpected end inside <%s>", c.stack[len(c.stack)-1].qname)
		return
	}
	switch {
	case c.startsWith("</"):
		c.endTag()
	case c.startsWith("<!--"):
		c.fail("comment")
	case c.startsWith("<![CDATA["):
		c.fail("CDATA section")
	case c.startsWith("<!"):
		c.fail("markup declaration")
	case c.startsWith("<?"):
		c.fail("processing instruction")
	case c.b[c.i] == '<':
		c.startTag()
	case c.b[c.i] == '&':
		v := c.reference()
		if c.rec {
			c.text = append(c.text, v...)
		}
	default:
		c.charData()
	}
}

func (c *checker) charData() {
	for c.i < len(c.b) && c.err == nil {
		ch := c.b[c.i]
		if ch == '<' || ch == '&' {
			return
		}
		if ch == '>' && c.i >= 2 && c.b[c.i-1] == ']' && c.b[c.i-2] == ']' {
			c.fail("]]> in character data")
			return
		}
		s := c.i
		c.char()
		if !c.rec || c.err != nil {
			continue
		}
		switch {
		case ch != '\r':
			c.text = append(c.text, c.b[s:c.i]...)
		case c.i < len(c.b) && c.b[c.i] == '\n':
			// CR LF is read as LF
		default:
			c.text = append(c.text, '\n')
		}
	}
}

// char consumes one character, which must be an XML Char.
func (c *checker) char() rune {
	r, n := utf8.DecodeRune(c.b[c.i:])
	if !isChar(r) || (r == utf8.RuneError && n == 1) {
		c.fail("character U+%04X is not allowed in XML", r)
		return r
	}
	if r == 0xFEFF && c.i == 0 {
		c.fail("byte order mark")
	}
	c.i += n
	return r
}

func isChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// reference consumes an entity or character reference and returns its value.
func (c *checker) reference() string {
	start := c.i
	c.i++ // &
	end := c.i
	for end < len(c.b) && end-start < 16 && c.b[end] != ';' {
		end++
	}
	if end >= len(c.b) || c.b[end] != ';' {
		c.i = start
		c.fail("& that does not start a reference")
		return ""
	}
	ref := string(c.b[c.i:end])
	c.i = end + 1
	switch ref {
	case "amp":
		return "&"
	case "lt":
		return "<"
	case "gt":
		return ">"
	case "quot":
		return "\""
	case "apos":
		return "'"
	}
	if len(ref) < 2 || ref[0] != '#' {
		c.i = start
		c.fail("reference to an entity other than the five predefined")
		return ""
	}
	digits, base := ref[1:], 10
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if digits == "" {
		c.i = start
		c.fail("empty character reference")
		return ""
	}
	for i := 0; i < len(digits); i++ {
		d := digits[i]
		ok := d >= '0' && d <= '9' || base == 16 && (d >= 'a' && d <= 'f' || d >= 'A' && d <= 'F')
		if !ok {
			c.i = start
			c.fail("malformed character reference")
			return ""
		}
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil || v > 0x10FFFF || !isChar(rune(v)) {
		c.i = start
		c.fail("character reference to a character XML cannot carry")
		return ""
	}
	return string(rune(v))
}

func isSpace(ch byte) bool { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' }

func (c *checker) space() bool {
	s := c.i
	for c.i < len(c.b) && isSpace(c.b[c.i]) {
		c.i++
	}
	return c.i > s
}

// name consumes an ASCII Name (colons allowed, checked as QName later).
func (c *checker) name() string {
	s := c.i
	for c.i < len(c.b) {
		ch := c.b[c.i]
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '_' || ch == ':' ||
			c.i > s && (ch >= '0' && ch <= '9' || ch == '-' || ch == '.')
		if !ok {
			break
		}
		c.i++
	}
	if c.i == s {
		if c.i < len(c.b) && c.b[c.i] >= utf8.RuneSelf {
			c.fail("non-ASCII name")
		} else {
			c.fail("expected a name")
		}
		return ""
	}
	if c.i < len(c.b) && c.b[c.i] >= utf8.RuneSelf {
		c.fail("non-ASCII name")
	}
	return string(c.b[s:c.i])
}

// splitQName splits a QName; ok is false for names with a stray colon.
func splitQName(q string) (prefix, local string, ok bool) {
	colon := -1
	for i := 0; i < len(q); i++ {
		if q[i] == ':' {
			if colon >= 0 {
				return "", "", false
			}
			colon = i
		}
	}
	if colon < 0 {
		return "", q, true
	}
	prefix, local = q[:colon], q[colon+1:]
	if prefix == "" || local == "" || !nameStart(local[0]) {
		return "", "", false
	}
	return prefix, local, true
}

func nameStart(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '_'
}

type rawAttr struct {
	qname, value string
	off          int
}

func (c *checker) startTag() {
	tagOff := c.i
	c.i++ // <
	qname := c.name()
	if c.err != nil {
		return
	}
	var attrs []rawAttr
	for {
		sp := c.space()
		if c.i >= len(c.b) {
			c.fail("unexpected end in a start tag")
			return
		}
		if c.b[c.i] == '>' || c.startsWith("/>") {
			break
		}
		if !sp {
			c.fail("expected whitespace before an attribute")
			return
		}
		off := c.i
		an := c.name()
		if c.err != nil {
			return
		}
		c.space()
		if !c.startsWith("=") {
			c.fail("expected = after attribute %s", an)
			return
		}
		c.i++
		c.space()
		v, ok := c.attValue()
		if !ok {
			return
		}
		for _, a := range attrs {
			if a.qname == an {
				c.i = off
				c.fail("attribute %s twice", an)
				return
			}
		}
		attrs = append(attrs, rawAttr{an, v, off})
	}
	empty := c.startsWith("/>")
	if empty {
		c.i += 2
	} else {
		c.i++
	}
	c.namespaces(tagOff, qname, attrs)
	if c.err != nil {
		return
	}
	if empty {
		if c.rec {
			c.out.WriteString("E\n")
		}
		c.pop()
	}
}

// attValue consumes a quoted attribute value and returns it normalised
// (literal tab, LF and CR are read as spaces, references replaced).
func (c *checker) attValue() (string, bool) {
	if c.i >= len(c.b) || c.b[c.i] != '"' && c.b[c.i] != '\'' {
		c.fail("expected a quoted attribute value")
		return "", false
	}
	q := c.b[c.i]
	c.i++
	var v []byte
	for c.err == nil {
		if c.i >= len(c.b) {
			c.fail("unterminated attribute value")
			return "", false
		}
		ch := c.b[c.i]
		switch {
		case ch == q:
			c.i++
			return string(v), true
		case ch == '<':
			c.fail("< in an attribute value")
		case ch == '&':
			v = append(v, c.reference()...)
		case isSpace(ch):
			if !(ch == '\r' && c.i+1 < len(c.b) && c.b[c.i+1] == '\n') {
				v = append(v, ' ') // CR LF is one line end
			}
			c.i++
		default:
			s := c.i
			c.char()
			v = append(v, c.b[s:c.i]...)
		}
	}
	return "", false
}

func (c *checker) namespaces(off int, qname string, attrs []rawAttr) {
	mark := len(c.scope)
	fail := func(at int, format string, args ...any) {
		c.i = at
		c.fail(format, args...)
	}
	// declarations first: they apply to the element's own names
	for _, a := range attrs {
		p, l, ok := splitQName(a.qname)
		if !ok {
			fail(a.off, "attribute name %s is not a QName", a.qname)
			return
		}
		switch {
		case p == "" && l == "xmlns":
			if a.value == XMLNamespace || a.value == XMLNSNamespace {
				fail(a.off, "default namespace bound to a reserved namespace")
				return
			}
			c.scope = append(c.scope, decl{"", a.value})
		case p == "xmlns":
			switch {
			case l == "xmlns":
				fail(a.off, "the xmlns prefix declared")
				return
			case l == "xml" && a.value != XMLNamespace:
				fail(a.off, "the xml prefix bound to another namespace")
				return
			case l != "xml" && (a.value == XMLNamespace || a.value == XMLNSNamespace):
				fail(a.off, "prefix %s bound to a reserved namespace", l)
				return
			case a.value == "":
				fail(a.off, "prefix %s un-declared (empty namespace name)", l)
				return
			}
			c.scope = append(c.scope, decl{l, a.value})
		}
	}
	ep, el, ok := splitQName(qname)
	if !ok {
		fail(off, "element name %s is not a QName", qname)
		return
	}
	if ep == "xmlns" {
		fail(off, "element with the xmlns prefix")
		return
	}
	space, bound := c.lookup(ep)
	if !bound {
		fail(off, "unbound prefix %s", ep)
		return
	}
	var expanded []Attr
	for _, a := range attrs {
		p, l, _ := splitQName(a.qname)
		if p == "xmlns" || p == "" && l == "xmlns" {
			continue
		}
		ns := ""
		if p != "" {
			if ns, bound = c.lookup(p); !bound || ns == "" {
				fail(a.off, "unbound prefix %s", p)
				return
			}
		}
		for _, x := range expanded {
			if x.Space == ns && x.Local == l {
				fail(a.off, "attribute {%s}%s twice", ns, l)
				return
			}
		}
		expanded = append(expanded, Attr{ns, l, a.value})
	}
	if len(c.stack) == 0 {
		c.root = Root{Space: space, Local: el, Attrs: expanded}
	}
	if c.rec {
		c.flush()
		sorted := append([]Attr(nil), expanded...)
		sort.Slice(sorted, func(i, j int) bool {
			if sorted[i].Space != sorted[j].Space {
				return sorted[i].Space < sorted[j].Space
			}
			return sorted[i].Local < sorted[j].Local
		})
		c.out.WriteString("S {" + space + "}" + el)
		for _, a := range sorted {
			c.out.WriteString(" {" + a.Space + "}" + a.Local + "=" + strconv.Quote(a.Value))
		}
		c.out.WriteString("\n")
	}
	c.stack = append(c.stack, open{qname, mark})
}

func (c *checker) lookup(prefix string) (string, bool) {
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].prefix == prefix {
			return c.scope[i].uri, true
		}
	}
	return "", false
}

func (c *checker) pop() {
	top := c.stack[len(c.stack)-1]
	c.stack = c.stack[:len(c.stack)-1]
	c.scope = c.scope[:top.mark]
}

func (c *checker) endTag() {
	c.i += 2 // </
	qname := c.name()
	if c.err != nil {
		return
	}
	c.space()
	if !c.startsWith(">") {
		c.fail("expected > in an end tag")
		return
	}
	c.i++
	if top := c.stack[len(c.stack)-1]; top.qname != qname {
		c.fail("</%s> closes <%s>", qname, top.qname)
		return
	}
	c.flush()
	if c.rec {
		c.out.WriteString("E\n")
	}
	c.pop()
}
