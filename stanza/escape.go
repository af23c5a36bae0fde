package stanza

import (
	"bytes"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// Byte classes used by the escapers. A zero entry means "copy as is".
//
//	1: escape in text and attributes (& < >)
//	2: escape in attributes only (" ' \t \n)
//	3: \r, escaped everywhere as &#xD;
//	4: a C0 control XML 1.0 cannot carry
var xmlClass = func() (t [256]byte) {
	for c := 0; c < 0x20; c++ {
		t[c] = 4
	}
	t['&'], t['<'], t['>'] = 1, 1, 1
	t['"'], t['\''], t['\t'], t['\n'] = 2, 2, 2, 2
	t['\r'] = 3
	return t
}()

// appendEscByte appends the escaped form of the special ASCII byte c.
func appendEscByte(dst []byte, c byte) []byte {
	switch c {
	case '&':
		return append(dst, "&amp;"...)
	case '<':
		return append(dst, "&lt;"...)
	case '>':
		return append(dst, "&gt;"...)
	case '"':
		return append(dst, "&quot;"...)
	case '\'':
		return append(dst, "&apos;"...)
	case '\t':
		return append(dst, "&#x9;"...)
	case '\n':
		return append(dst, "&#xA;"...)
	case '\r':
		return append(dst, "&#xD;"...)
	}
	return append(dst, c)
}

// appendEsc appends s escaped for XML character data (attr false) or for an
// attribute value delimited by either quote (attr true). It assumes s holds
// only characters XML can carry (validated before); C0 controls that slip
// through are replaced by U+FFFD so the output stays well-formed.
func appendEsc[T string | []byte](dst []byte, s T, attr bool) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		k := xmlClass[c]
		if k == 0 || (k == 2 && !attr) {
			continue
		}
		dst = append(dst, s[start:i]...)
		start = i + 1
		if k == 4 {
			dst = append(dst, "\uFFFD"...)
			continue
		}
		dst = appendEscByte(dst, c)
	}
	return append(dst, s[start:]...)
}

// appendEscSafe is appendEsc for strings that were not validated (caller
// supplied or from a peer): invalid UTF-8 and characters XML 1.0 cannot carry
// are replaced by U+FFFD.
func appendEscSafe(dst []byte, s string, attr bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			k := xmlClass[c]
			if k == 0 || (k == 2 && !attr) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if k == 4 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = appendEscByte(dst, c)
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendEscRune appends one (valid) rune escaped.
func appendEscRune(dst []byte, r rune, attr bool) []byte {
	if r < utf8.RuneSelf {
		c := byte(r)
		k := xmlClass[c]
		if k == 0 || (k == 2 && !attr) {
			return append(dst, c)
		}
		if k == 4 {
			return append(dst, "\uFFFD"...)
		}
		return appendEscByte(dst, c)
	}
	return utf8.AppendRune(dst, r)
}

// isXMLChar reports whether r is a Char of XML 1.0 (§2.2).
func isXMLChar(r rune) bool {
	switch {
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r == 0x9 || r == 0xA || r == 0xD:
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// hasNonChar reports whether the valid UTF-8 b contains U+FFFE or U+FFFF,
// the only non-characters that valid UTF-8 without C0 controls can hold.
func hasNonChar(b []byte) bool {
	for {
		i := bytes.IndexByte(b, 0xEF)
		if i < 0 || i+2 >= len(b) {
			return false
		}
		if b[i+1] == 0xBF && (b[i+2] == 0xBE || b[i+2] == 0xBF) {
			return true
		}
		b = b[i+1:]
	}
}

// validXMLString reports whether s is valid UTF-8 made only of XML Chars.
func validXMLString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !isXMLChar(r) {
			return false
		}
		i += size
	}
	return true
}
