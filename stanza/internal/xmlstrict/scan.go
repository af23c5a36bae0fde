package xmlstrict

import (
	"strconv"
	"unicode/utf8"
)

// The scanner: one method per production of the grammar it accepts, each
// consuming its bytes from c.b at c.i and recording the first violation in
// c.err. The namespace checks of a start tag are in namespaces.go.

// document scans the whole input: one element and nothing else.
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

// charData scans a run of character data.
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
func (c *checker) char() {
	r, n := utf8.DecodeRune(c.b[c.i:])
	if !isChar(r) || (r == utf8.RuneError && n == 1) {
		c.fail("character U+%04X is not allowed in XML", r)
		return
	}
	if r == 0xFEFF && c.i == 0 {
		c.fail("byte order mark")
	}
	c.i += n
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

// space consumes whitespace and reports whether there was any.
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

// rawAttr is an attribute as written: its qualified name, its normalised
// value and its offset.
type rawAttr struct {
	qname, value string
	off          int
}

// startTag scans a start tag (or an empty-element tag, which it also
// closes) and checks its names (namespaces).
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

// endTag scans an end tag, which must close the open element.
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
