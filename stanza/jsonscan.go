package stanza

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of arrays and objects in an item.
const maxJSONDepth = 512

// jsonErr describes where a JSON document stopped being valid.
type jsonErr struct {
	off int
	msg string
}

// scanner is a validating JSON scanner over one document. It never
// allocates: string values are reported as spans of the input.
type scanner struct {
	b       []byte
	i       int
	depth   int
	special int // count of strings that are not plain, and of CRs outside strings
	err     jsonErr
}

func (s *scanner) fail(msg string) bool {
	if s.err.msg == "" {
		s.err = jsonErr{off: s.i, msg: msg}
	}
	return false
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n':
			s.i++
		case '\r':
			s.special++
			s.i++
		default:
			return
		}
	}
}

// strClass classifies bytes inside JSON strings: 0 plain; 1 quote;
// 2 backslash; 3 control (invalid raw in JSON); 4 needs XML escaping or a
// closer look (& < > ' and 0xEF, the lead byte of U+FFFE and U+FFFF).
var strClass = func() (t [256]byte) {
	for c := 0; c < 0x20; c++ {
		t[c] = 3
	}
	t['"'], t['\\'] = 1, 2
	t['&'], t['<'], t['>'], t['\''], t[0xEF] = 4, 4, 4, 4, 4
	return t
}()

// str scans a string starting at the opening quote. It returns the span
// between the quotes, whether it holds escapes, and whether it is plain:
// no escapes, nothing XML must escape, no U+FFFE/U+FFFF, so it can be
// copied into XML as is. A string that is not plain increments s.special.
func (s *scanner) str() (raw []byte, esc, plain, ok bool) {
	b := s.b
	i := s.i + 1 // opening quote
	start := i
	plain = true
	for {
		for i+4 <= len(b) && strClass[b[i]]|strClass[b[i+1]]|strClass[b[i+2]]|strClass[b[i+3]] == 0 {
			i += 4
		}
		for i < len(b) && strClass[b[i]] == 0 {
			i++
		}
		if i >= len(b) {
			s.i = i
			return nil, false, false, s.fail("unterminated string")
		}
		switch strClass[b[i]] {
		case 1:
			s.i = i + 1
			if !plain {
				s.special++
			}
			return b[start:i], esc, plain, true
		case 2:
			esc, plain = true, false
			s.i = i
			if i+1 >= len(b) {
				return nil, false, false, s.fail("unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return nil, false, false, s.fail("short \\u escape")
				}
				for _, h := range b[i+2 : i+6] {
					if hexVal(h) < 0 {
						return nil, false, false, s.fail("bad \\u escape")
					}
				}
				i += 6
			default:
				return nil, false, false, s.fail("bad escape")
			}
		case 3:
			s.i = i
			return nil, false, false, s.fail("control character in string")
		default:
			plain = false
			i++
		}
	}
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// value scans any JSON value.
func (s *scanner) value() bool {
	s.ws()
	if s.i >= len(s.b) {
		return s.fail("unexpected end of input")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, _, ok := s.str()
		return ok
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return s.fail("unexpected character")
}

func (s *scanner) lit(w string) bool {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.fail("bad literal")
	}
	s.i += len(w)
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return s.fail("bad number")
	}
	if s.b[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	return true
}

func (s *scanner) array() bool {
	if empty, ok := s.open(']'); !ok || empty {
		return ok
	}
	for {
		if !s.value() {
			return false
		}
		if more, ok := s.next(']', "expected , or ]"); !more {
			return ok
		}
	}
}

// object scans an object. When member is not nil it is called for every
// member with the raw key (and whether it has escapes) before its value is
// scanned; member scans the value itself and returns false to stop.
func (s *scanner) object(member func(key []byte, esc bool) bool) bool {
	if empty, ok := s.open('}'); !ok || empty {
		return ok
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.fail("expected object key")
		}
		key, esc, _, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.fail("expected :")
		}
		s.i++
		if member != nil {
			if !member(key, esc) {
				return false
			}
		} else if !s.value() {
			return false
		}
		if more, ok := s.next('}', "expected , or }"); !more {
			return ok
		}
	}
}

// open enters an array or an object at its opening byte, one level deeper;
// empty reports that it closed at once (with close), ok is false when it is
// nested too deeply.
func (s *scanner) open(close byte) (empty, ok bool) {
	s.depth++
	if s.depth > maxJSONDepth {
		return false, s.fail("nested too deeply")
	}
	s.i++ // [ or {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == close {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// next reads what follows an element or a member: a comma (more follows)
// or close (the container ends, one level up); anything else fails with
// msg.
func (s *scanner) next(close byte, msg string) (more, ok bool) {
	s.ws()
	if s.i >= len(s.b) {
		return false, s.fail("unexpected end of input")
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		return true, true
	case close:
		s.i++
		s.depth--
		return false, true
	}
	return false, s.fail(msg)
}

// nextJSONRune decodes the next character of a scanned (syntactically valid)
// JSON string body at raw[i:]. It returns the rune, the bytes consumed, and
// ok=false for a character XML cannot carry (lone surrogates, C0 controls
// other than tab, newline and carriage return, U+FFFE, U+FFFF).
func nextJSONRune(raw []byte, i int) (r rune, n int, ok bool) {
	c := raw[i]
	if c != '\\' {
		if c < utf8.RuneSelf {
			return rune(c), 1, true
		}
		r, n = utf8.DecodeRune(raw[i:])
		return r, n, isXMLChar(r) && !(r == utf8.RuneError && n == 1)
	}
	switch raw[i+1] {
	case '"':
		return '"', 2, true
	case '\\':
		return '\\', 2, true
	case '/':
		return '/', 2, true
	case 'b':
		return '\b', 2, false
	case 'f':
		return '\f', 2, false
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	}
	// \uXXXX
	r = hex4(raw[i+2:])
	n = 6
	if utf16.IsSurrogate(r) {
		if r >= 0xDC00 || i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
			return utf8.RuneError, n, false
		}
		r2 := hex4(raw[i+8:])
		dec := utf16.DecodeRune(r, r2)
		if dec == utf8.RuneError {
			return utf8.RuneError, n, false
		}
		return dec, 12, true
	}
	return r, n, isXMLChar(r)
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// checkJSONString validates a scanned JSON string body for XML and returns
// its decoded length in UTF-8 bytes.
func checkJSONString(raw []byte, esc bool) (n int, ok bool) {
	if !esc {
		// Valid UTF-8 without controls (JSON forbids them raw): only the
		// non-characters U+FFFE and U+FFFF remain to be excluded.
		return len(raw), !hasNonChar(raw)
	}
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			// copy runs quickly; only 0xEF can start U+FFFE/U+FFFF.
			j := i
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			if hasNonChar(raw[i:j]) {
				return 0, false
			}
			n += j - i
			i = j
			continue
		}
		r, sz, good := nextJSONRune(raw, i)
		if !good {
			return 0, false
		}
		n += utf8.RuneLen(r)
		i += sz
	}
	return n, true
}

// appendJSONString appends the decoded JSON string body raw to dst.
// raw must have passed checkJSONString.
func appendJSONString(dst, raw []byte, esc bool) []byte {
	if !esc {
		return append(dst, raw...)
	}
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		r, sz, _ := nextJSONRune(raw, i)
		dst = utf8.AppendRune(dst, r)
		i += sz
	}
	return dst
}

// appendJSONStringXML appends the decoded JSON string body raw to dst,
// escaped for XML. raw must have passed checkJSONString.
func appendJSONStringXML(dst, raw []byte, esc bool, attr bool) []byte {
	if !esc {
		return appendEsc(dst, raw, attr)
	}
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = appendEsc(dst, raw[i:j], attr)
			i = j
			continue
		}
		r, sz, _ := nextJSONRune(raw, i)
		dst = appendEscRune(dst, r, attr)
		i += sz
	}
	return dst
}
