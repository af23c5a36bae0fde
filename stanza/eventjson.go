package stanza

import (
	"time"
	"unicode/utf8"
)

// AppendJSON appends the event as one JSON object: keys in the order kind,
// id, from, to, type, room, nick, text, subject, thread, payload, condition, show,
// status, replace, encrypted, received_at; empty fields omitted; strings escaped per RFC 8259
// (invalid UTF-8 becomes U+FFFD); payload copied as is; received_at in RFC
// 3339 UTC with microseconds, e.g. "2026-11-22T10:00:00.123456Z".
func (ev *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	key := func(k string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
	}
	str := func(k, v string) {
		if v == "" {
			return
		}
		key(k)
		dst = appendJSONQuoted(dst, v)
	}
	str("kind", ev.Kind)
	str("id", ev.ID)
	str("from", ev.From)
	str("to", ev.To)
	str("type", ev.Type)
	str("room", ev.Room)
	str("nick", ev.Nick)
	str("text", ev.Text)
	str("subject", ev.Subject)
	str("thread", ev.Thread)
	if len(ev.Payload) > 0 {
		key("payload")
		dst = append(dst, ev.Payload...)
	}
	str("condition", ev.Condition)
	str("show", ev.Show)
	str("status", ev.Status)
	str("replace", ev.Replace)
	str("encrypted", ev.Encrypted)
	if !ev.ReceivedAt.IsZero() {
		key("received_at")
		dst = append(dst, '"')
		dst = appendTime(dst, ev.ReceivedAt)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// jsonSafe marks the ASCII bytes a JSON string holds unescaped.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = false, false
	return t
}()

// appendJSONQuoted appends s as a JSON string.
func appendJSONQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendTime appends t in UTC per timeLayout: the same bytes as
// t.UTC().AppendFormat(dst, timeLayout), hand-formatted for years 0-9999.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, min, sec := t.Clock()
	us := t.Nanosecond() / 1000
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+min/10), byte('0'+min%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10), 'Z')
}

// timeLayout is the layout of received_at.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"
