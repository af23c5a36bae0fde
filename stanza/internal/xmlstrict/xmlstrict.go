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

// decl is a namespace declaration in scope.
type decl struct{ prefix, uri string }

// open is an open element: its name as written and len(scope) before its
// declarations.
type open struct {
	qname string
	mark  int
}

// checker is the state of one Check or Canon.
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

// fail records the first violation, at the current offset.
func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = &Error{Off: c.i, Msg: fmt.Sprintf(format, args...)}
	}
}

// failAt records the first violation, at offset at.
func (c *checker) failAt(at int, format string, args ...any) {
	c.i = at
	c.fail(format, args...)
}

// flush records the character data read since the last markup.
func (c *checker) flush() {
	if c.rec && len(c.text) > 0 {
		c.out.WriteString("T " + strconv.Quote(string(c.text)) + "\n")
		c.text = c.text[:0]
	}
}
