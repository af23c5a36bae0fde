package stanza

// The fast message decoder's character data, CDATA, references, names and
// the ownership of the event's strings (decode_bytes.go reads the tags).

import (
	"bytes"
	"unicode/utf8"
	"unsafe"
)

// charData reads character data from b[i] up to the next '<', handing it
// to m piece by piece (runs of plain text, the characters references
// stand for).
func (d *MessageDecoder) charData(m *messageReader, b []byte, i int) (int, bool) {
	start := i
	for i < len(b) {
		switch c := b[i]; charClass[c] {
		case cPlain:
			i++
		case cLT:
			if i > start {
				m.text(b[start:i])
			}
			return i, true
		case cGT:
			if i-start >= 2 && b[i-1] == ']' && b[i-2] == ']' {
				return i, false // ]]> outside CDATA
			}
			i++
		case cAmp:
			r, n := refAt(b, i)
			if n == 0 {
				return i, false
			}
			if i > start {
				m.text(b[start:i])
			}
			var enc [utf8.UTFMax]byte
			m.text(enc[:utf8.EncodeRune(enc[:], r)])
			i += n
			start = i
		case cHigh:
			n := validRune(b[i:])
			if n == 0 {
				return i, false
			}
			i += n
		default:
			return i, false
		}
	}
	return i, false
}

// cdata reads a CDATA section at b[i] ("<!").
func (d *MessageDecoder) cdata(m *messageReader, b []byte, i int) (int, bool) {
	const open = "<![CDATA["
	if len(b)-i < len(open) || string(b[i:i+len(open)]) != open {
		return i, false // a comment or a directive
	}
	i += len(open)
	end := bytes.Index(b[i:], []byte("]]>"))
	if end < 0 {
		return i, false
	}
	data := b[i : i+end]
	for k := 0; k < len(data); {
		switch charClass[data[k]] {
		case cPlain, cLT, cGT, cAmp:
			k++
		case cHigh:
			n := validRune(data[k:])
			if n == 0 {
				return i, false
			}
			k += n
		default:
			return i, false
		}
	}
	m.text(data)
	return i + end + 3, true
}

// Classes of bytes in text and attribute values.
const (
	cPlain = iota
	cLT
	cGT
	cAmp
	cHigh // the first byte of a multi-byte UTF-8 sequence, or not UTF-8
	cBad  // a control character XML does not allow, or CR (which encoding/xml rewrites)
)

var charClass = func() (t [256]uint8) {
	for c := range t {
		switch {
		case c == '<':
			t[c] = cLT
		case c == '>':
			t[c] = cGT
		case c == '&':
			t[c] = cAmp
		case c >= utf8.RuneSelf:
			t[c] = cHigh
		case c < 0x20 && c != '\t' && c != '\n':
			t[c] = cBad
		}
	}
	return t
}()

// validRune returns the length of the UTF-8 sequence at the start of b if
// it encodes a character XML allows, 0 otherwise.
func validRune(b []byte) int {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
		return 0
	}
	return n
}

// refAt reads the reference at b[i] ('&'): one of the five predefined
// entities, or a character reference to a character XML allows (not a
// surrogate, which encoding/xml turns into U+FFFD). It returns the
// character and the reference's length, 0 for anything else.
func refAt(b []byte, i int) (rune, int) {
	rest := b[i+1:]
	semi := bytes.IndexByte(rest[:min(len(rest), 10)], ';')
	if semi < 1 {
		return 0, 0
	}
	name := rest[:semi]
	n := semi + 2
	switch string(name) {
	case "lt":
		return '<', n
	case "gt":
		return '>', n
	case "amp":
		return '&', n
	case "apos":
		return '\'', n
	case "quot":
		return '"', n
	}
	if name[0] != '#' || len(name) < 2 {
		return 0, 0
	}
	digits, base := name[1:], rune(10)
	if digits[0] == 'x' {
		digits, base = digits[1:], 16
	}
	if len(digits) == 0 || len(digits) > 7 {
		return 0, 0
	}
	var r rune
	for _, c := range digits {
		var v rune
		switch {
		case '0' <= c && c <= '9':
			v = rune(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			v = rune(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			v = rune(c-'A') + 10
		default:
			return 0, 0
		}
		r = r*base + v
	}
	if !xmlChar(r) {
		return 0, 0
	}
	return r, n
}

// xmlChar reports whether XML 1.0 allows r (and r is not a surrogate).
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= utf8.MaxRune
}

// unescape appends raw, an attribute value whose references refAt
// accepted, to dst with its references replaced.
func unescape(dst, raw []byte) []byte {
	for len(raw) > 0 {
		amp := bytes.IndexByte(raw, '&')
		if amp < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:amp]...)
		r, n := refAt(raw, amp)
		dst = utf8.AppendRune(dst, r)
		raw = raw[amp+n:]
	}
	return dst
}

// scanName reads an ASCII name, [A-Za-z_][A-Za-z0-9._-]*, at b[i] and
// returns the position after it.
func scanName(b []byte, i int) (int, bool) {
	if i >= len(b) || !(b[i] >= 'a' && b[i] <= 'z' || b[i] >= 'A' && b[i] <= 'Z' || b[i] == '_') {
		return i, false
	}
	for i++; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			break
		}
	}
	return i, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// view is b as a string without a copy: valid only while b is unchanged.
// Decode copies every string it returns (ownStrings).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// ownStrings gives ev's strings (views into the element or the decoder's
// buffers) one allocation of their own, and its payload another.
func ownStrings(ev *Event) {
	fields := [...]*string{&ev.From, &ev.To, &ev.ID, &ev.Text, &ev.Subject, &ev.Thread, &ev.Condition,
		&ev.Status, &ev.Replace, &ev.StanzaID, &ev.StanzaIDBy}
	n := 0
	for _, f := range fields {
		n += len(*f)
	}
	if n > 0 {
		buf := make([]byte, 0, n)
		for _, f := range fields {
			if len(*f) > 0 {
				k := len(buf)
				buf = append(buf, *f...)
				*f = unsafe.String(&buf[k], len(*f))
			}
		}
	}
	if ev.Payload != nil {
		ev.Payload = bytes.Clone(ev.Payload)
	}
}
