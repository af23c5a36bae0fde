package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
)

// ErrNotFast is what MessageDecoder.Decode returns for an element it
// leaves to DecodeMessage: nothing about the element is known then, not
// even that it is well-formed.
var ErrNotFast = errors.New("stanza: element left to the token decoder")

// Bounds of the shapes MessageDecoder takes: deeper elements, or elements
// with more attributes, are left to DecodeMessage.
const (
	maxFastDepth = 40
	maxFastAttrs = 16
)

// MessageDecoder decodes whole <message/> elements held in memory without
// encoding/xml, reusing its buffers from one call to the next. It is not
// safe for concurrent use.
//
// Decode either returns exactly the Event that DecodeMessage returns for
// the same element read from a stream whose default namespace is NS (with
// a nil error), or ErrNotFast. It takes the common shapes only and leaves
// everything else to DecodeMessage: an element that is not one whole,
// well-formed <message/> in NS; any name that is not ASCII ([A-Za-z_]
// then [A-Za-z0-9._-]); a prefixed element name; a prefixed attribute
// other than xml:… (and xml:from on the message); a namespace prefix
// declaration; the streams namespace; a repeated attribute; a raw CR; a
// reference other than the five predefined entities and character
// references to characters XML allows; ]]> in text; comments, processing
// instructions and directives; more than maxFastDepth levels or
// maxFastAttrs attributes on an element; and every element DecodeMessage
// refuses with a *DecodeError (over a limit, too deep, a bad payload).
// FuzzDecodeMessageBytes holds it to that against DecodeMessage over
// encoding/xml.
//
// The strings of the Event share one allocation of their own (and the
// payload one more): nothing in it points into elem or into the decoder.
type MessageDecoder struct {
	NS     string // the stream's default namespace, e.g. jabber:component:accept
	Limits Limits

	text   [4][]byte // body, subject, thread and payload, reused
	errTxt []byte    // error text, reused
	vals   []byte    // attribute values with references, decoded
	attrs  [maxFastAttrs]fastAttr
	xattrs [maxFastAttrs]xml.Attr
	names  [maxFastDepth + 1][]byte // raw names of the open elements, by depth
	nss    [maxFastDepth + 1]string // default namespace in effect, by depth
}

// fastAttr is one attribute of the element being read.
type fastAttr struct {
	raw   []byte // the name as written
	xml   bool   // the name has the xml: prefix; local is after it
	local string
	value string // decoded
}

// Decode decodes elem, one whole <message/> element, or returns
// ErrNotFast.
func (d *MessageDecoder) Decode(elem []byte) (Event, error) {
	ev, ok := d.decode(elem)
	if !ok {
		return Event{}, ErrNotFast
	}
	return ev, nil
}

func (d *MessageDecoder) decode(b []byte) (ev Event, ok bool) {
	const root = "<message"
	if len(b) < len(root) || string(b[:len(root)]) != root {
		return ev, false
	}
	d.vals = d.vals[:0]
	m := messageReader{stanzaReader: stanzaReader{lim: d.Limits.withDefaults(), depth: 1}, ns: d.NS}
	m.body, m.subject, m.thread, m.payload = d.text[0][:0], d.text[1][:0], d.text[2][:0], d.text[3][:0]
	m.errText = d.errTxt[:0]
	defer func() {
		// Keep what grew for the next call.
		d.text[0], d.text[1], d.text[2], d.text[3], d.errTxt = m.body[:0], m.subject[:0], m.thread[:0], m.payload[:0], m.errText[:0]
	}()

	i, n, self, ok := d.startTag(b, len(root))
	if !ok {
		return ev, false
	}
	d.nss[1] = d.NS
	for _, a := range d.attrs[:n] {
		switch {
		case a.xml:
			if a.local == "from" {
				return ev, false // mellium blanks the first attribute named from, whatever its prefix
			}
		case a.local == "xmlns":
			d.nss[1] = a.value
		case a.local == "from":
			ev.From = a.value
		case a.local == "to":
			ev.To = a.value
		case a.local == "id":
			ev.ID = a.value
		case a.local == "type":
			ev.Type = a.value
		}
	}
	if d.nss[1] != d.NS {
		return ev, false // another stanza namespace: not a message of this stream
	}
	ev.Type = messageType(ev.Type)
	m.checkAttrs(ev.From, ev.To, ev.ID)
	d.names[1] = b[1:len(root)]
	if self {
		m.depth = 0
	} else if i, ok = d.content(&m, b, i); !ok {
		return ev, false
	}
	if i != len(b) || m.derr != nil {
		return ev, false
	}
	ev.Condition = m.cond
	if m.complete(&ev) != nil {
		return ev, false
	}
	ownStrings(&ev)
	return ev, true
}

// content reads the message's content from b[i] to the message's end
// tag, handing what it reads to m as DecodeMessage would, and returns the
// position after the end tag.
func (d *MessageDecoder) content(m *messageReader, b []byte, i int) (int, bool) {
	var ok bool
	for {
		if i, ok = d.charData(m, b, i); !ok {
			return i, false
		}
		// b[i] is '<'.
		if i+1 >= len(b) {
			return i, false
		}
		switch c := b[i+1]; {
		case c == '/':
			if i, ok = d.endTag(b, i+2, m.depth); !ok {
				return i, false
			}
			m.depth--
			m.end()
			if m.depth == 0 {
				return i, true
			}
		case c == '!':
			if i, ok = d.cdata(m, b, i); !ok {
				return i, false
			}
		default:
			if i, ok = d.child(m, b, i+1); !ok {
				return i, false
			}
		}
	}
}

// child reads a child element's start tag at b[i] (after its '<').
func (d *MessageDecoder) child(m *messageReader, b []byte, i int) (int, bool) {
	nameStart := i
	i, ok := scanName(b, i)
	if !ok || i >= len(b) || b[i] == ':' {
		return i, false
	}
	name := b[nameStart:i]
	i, n, self, ok := d.startTag(b, i)
	if !ok {
		return i, false
	}
	depth := m.depth + 1
	if depth > maxFastDepth || depth-1 > m.lim.MaxDepth {
		return i, false
	}
	ns := d.nss[depth-1]
	for _, a := range d.attrs[:n] {
		if !a.xml && a.local == "xmlns" {
			ns = a.value
		}
	}
	d.nss[depth], d.names[depth] = ns, name
	m.depth = depth
	if depth <= 3 {
		if string(name) == "xmlns" {
			return i, false // encoding/xml leaves such an element in no namespace
		}
		t := xml.StartElement{Name: xml.Name{Space: ns, Local: view(name)}, Attr: d.xattrs[:n]}
		for k, a := range d.attrs[:n] {
			t.Attr[k] = xml.Attr{Name: xml.Name{Local: a.local}, Value: a.value}
			if a.xml {
				t.Attr[k].Name.Space = nsXML
			}
		}
		m.start(&t)
	}
	if self {
		m.depth--
		m.end()
	}
	return i, true
}

// startTag reads a start tag's attributes from b[i] (after the element's
// name) to its end, and returns the position after it, the number of
// attributes in d.attrs and whether the element is empty (<x/>).
func (d *MessageDecoder) startTag(b []byte, i int) (next, n int, self, ok bool) {
	for {
		sp := i
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return i, n, false, false
		}
		switch b[i] {
		case '>':
			return i + 1, n, false, true
		case '/':
			if i+1 < len(b) && b[i+1] == '>' {
				return i + 2, n, true, true
			}
			return i, n, false, false
		}
		if sp == i || n == maxFastAttrs {
			return i, n, false, false // no space before the attribute, or too many
		}
		a := &d.attrs[n]
		if i, ok = d.attr(a, b, i); !ok {
			return i, n, false, false
		}
		for _, p := range d.attrs[:n] {
			if bytes.Equal(p.raw, a.raw) {
				return i, n, false, false
			}
		}
		n++
	}
}

// attr reads one attribute, name="value", at b[i].
func (d *MessageDecoder) attr(a *fastAttr, b []byte, i int) (int, bool) {
	start := i
	i, ok := scanName(b, i)
	if !ok || i >= len(b) {
		return i, false
	}
	a.xml = false
	if b[i] == ':' {
		if string(b[start:i]) != "xml" {
			return i, false // a declaration or use of a prefix
		}
		a.xml = true
		if i, ok = scanName(b, i+1); !ok || i >= len(b) {
			return i, false
		}
		a.local = view(b[start+4 : i])
	} else {
		a.local = view(b[start:i])
	}
	a.raw = b[start:i]
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '=' {
		return i, false
	}
	i++
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '\'' && b[i] != '"' {
		return i, false
	}
	q := b[i]
	i++
	vstart, esc := i, false
	for ; i < len(b) && b[i] != q; i++ {
		switch c := b[i]; charClass[c] {
		case cPlain, cGT:
		case cAmp:
			_, n := refAt(b, i)
			if n == 0 {
				return i, false
			}
			esc = true
			i += n - 1
		case cHigh:
			n := validRune(b[i:])
			if n == 0 {
				return i, false
			}
			i += n - 1
		default: // '<', a control character, CR
			return i, false
		}
	}
	if i >= len(b) {
		return i, false
	}
	raw := b[vstart:i]
	if esc {
		k := len(d.vals)
		d.vals = unescape(d.vals, raw)
		raw = d.vals[k:]
	}
	a.value = view(raw)
	if !a.xml && a.local == "xmlns" && a.value == nsStream {
		return i, false // mellium ends the stream on elements in the streams namespace
	}
	return i + 1, true
}

// endTag reads an end tag from b[i] (after "</"), which must close the
// element open at depth.
func (d *MessageDecoder) endTag(b []byte, i, depth int) (int, bool) {
	name := d.names[depth]
	if len(b)-i < len(name) || !bytes.Equal(b[i:i+len(name)], name) {
		return i, false
	}
	i += len(name)
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i >= len(b) || b[i] != '>' {
		return i, false
	}
	return i + 1, true
}
