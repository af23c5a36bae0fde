package stanza

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

var fuzzSeeds = []string{
	`{"target":"a@b","text":"v2","replace":"v\u0031&'","receipt":true,"id":"v2"}`,
	`{"target":"r@c.b","type":"groupchat","text":"x","receipt":true}`,
	`{"target":"alice@example.org","text":"hi","payload":{"k":[1,2.5e3,true,null]},"id":"a1"}`,
	`{"target":"Alice@Example.ORG/Phone","text":"<&>'\"\r\n\t😀\ud83d\ude00","from":"ops"}`,
	`{"target":"a@b","text":"\u0000"}`,
	`{"target":"a@b","text":"\ud800x"}`,
	`{"target":"a@b","text":"\uFFFE"}`,
	"{\"target\":\"a@b\",\"text\":\"\xff\"}",
	`{"kind":"presence","target":"a@b","type":"subscribe","status":"s","show":"dnd"}`,
	`{"stanza":"<message to='a@b' id='x'><body>hi</body><x:y xmlns:x='urn:x' x:z='1'/></message>"}`,
	`{"stanza":"<message to='a@b'></stream:stream><stream:stream>"}`,
	`{"stanza":"<presence to='a@b'/>trailing"}`,
	`{"stanza":"<message from='x@evil.org'/>"}`,
	`{"t\u0061rget":"a@b","text":"esc key"}`,
	`{"target":"a@b","text":"x","target":"c@d"}`,
	`[[[[[[[[[[1]]]]]]]]]]`,
	`{"target":"a@b","text":"x","enqueued_at":"2026-11-22T10:00:00.5Z"}`,
	`{"target":"xn--bcher-kva.example","text":"x"}`,
	`{"target":"a@b.","text":"x"}`,
	`{"target":"a@127.0.0.1","text":"x"}`,
	`{"target":"a@[::1]","text":"x"}`,
}

// metaSeeds are AMQP properties for the FuzzAppend seeds.
var metaSeeds = []struct {
	id, typ string
	ts      int64
}{
	{"", "", 0},
	{"msg-1", "order", 1700000000},
	{"x'<&>\"\x00", "\xff", -1},
}

// FuzzAppend: any body with any AMQP properties is either refused with an
// *ItemError (dst unchanged, a short detail) or written as a stanza that the
// strict oracle accepts, text and payload round-tripping.
func FuzzAppend(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, m := range metaSeeds {
			f.Add([]byte(s), false, m.id, m.typ, m.ts)
		}
	}
	comp := newEnc(f, ModeComponent)
	client := newEnc(f, ModeClient)
	f.Fuzz(func(t *testing.T, body []byte, clientMode bool, msgID, typ string, ts int64) {
		e := comp
		if clientMode {
			e = client
		}
		m := Meta{MessageID: msgID, Type: typ}
		if ts != 0 {
			m.Timestamp = time.Unix(ts, 0)
		}
		dst := []byte("<pre/>")
		out, info, err := e.Append(dst, body, m)
		var ie *ItemError
		if err != nil {
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v", err, err)
			}
			if len(out) != len(dst) || string(out) != "<pre/>" {
				t.Fatal("dst changed on error")
			}
			if len(ie.Detail) > 300 {
				t.Fatalf("long detail %q", ie.Detail)
			}
			// Our scanner agrees with encoding/json on validity.
			if ie.Reason == ReasonInvalidJSON && utf8.Valid(body) && json.Valid(body) {
				trim := bytes.TrimLeft(body, " \t\r\n")
				if len(trim) > 0 && trim[0] == '{' && bytes.Count(body, []byte("{"))+bytes.Count(body, []byte("[")) < maxJSONDepth {
					t.Fatalf("valid JSON refused: %v", ie)
				}
			}
			return
		}
		if !json.Valid(body) {
			t.Fatal("invalid JSON accepted")
		}
		if err := strictCheck(e, out[len(dst):]); err != nil {
			t.Fatalf("oracle refuses what Append wrote: %v\n%s", err, out[len(dst):])
		}
		p := parseOne(t, out[len(dst):])
		if p.Attrs["id"] != info.ID {
			t.Fatalf("id %q vs %q", p.Attrs["id"], info.ID)
		}
		var v map[string]json.RawMessage
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		if raw, ok := v["stanza"]; ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				if _, err := sameMeaning(e, s, out[len(dst):]); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
		var text *string
		if v, ok := v["text"]; ok {
			json.Unmarshal(v, &text)
		}
		if text != nil && (p.Body == nil || *p.Body != *text) {
			t.Fatalf("text %q did not round-trip: %v", *text, p.Body)
		}
		if v, ok := v["payload"]; ok && string(v) != "null" {
			if p.JSON == nil || *p.JSON != string(v) {
				t.Fatalf("payload %s did not round-trip", v)
			}
		}
		if info.Kind == "message" {
			if id, ok := p.ChildIDs[nsSID+" origin-id"]; p.Last != nsSID+" origin-id" || !ok || id != info.ID {
				t.Fatalf("the last child is %q with id %q, want an origin-id with id %q", p.Last, id, info.ID)
			}
			var replace *string
			json.Unmarshal(v["replace"], &replace)
			if got, ok := p.ChildIDs[nsCorrect+" replace"]; (replace != nil) != ok || (ok && got != *replace) {
				t.Fatalf("replace %v written as %q (%v)", replace, got, ok)
			}
		}
	})
}

var rawSeeds = []string{
	`<message to='a@b' id='x'><body>hi</body><x:y xmlns:x='urn:x' x:z='1'/></message>`,
	`<presence to='a@b' type='subscribe'/>`,
	`<message to='a@b'><x:/></message>`,
	`<message to='a@b'><:x/></message>`,
	`<message to='a@b'><x y:='1'/></message>`,
	`<message to='a@b' :from='x@evil.org'/>`,
	`<message to='a@b'><x xmlns:p='urn:a' xmlns:q='urn:a' p:z='1' q:z='2'/></message>`,
	`<message to='a@b'><x xmlns='http://www.w3.org/XML/1998/namespace'/></message>`,
	`<message to='a@b'><p:x xmlns:p='http://www.w3.org/2000/xmlns/'/></message>`,
	`<message to='a@b'><x xmlns:xml='urn:other'/></message>`,
	`<message to='a@b'><x xmlns:p=''/></message>`,
	`<m:message xmlns:m='jabber:client' to='a@b'><m:body xml:lang='en'>a&amp;b&#x1F600;]]&gt;</m:body><!-- c --></m:message>`,
	`<message xmlns='' to='a@b'><body>x</body><y xmlns='urn:y'><z a='1'/></y></message>`,
	"<message to='a@b'><body>a\r\nb\rc&#xD;</body></message>",
	`<message to='a@b'><body>&secret;</body></message>`,
	`<message to='a@b' id='a&#10;b'/>`,
	`<message to='a@b'><x-é/></message>`,
	`<message to='a@b' from='gw.example.org' type='headline'><![CDATA[<&>]]></message>`,
	`<presence from='bot@example.org' to='a@b'/>`,
}

// FuzzRawStanza: a raw stanza item is refused, or re-encoded into bytes the
// strict oracle accepts and that mean to a server what the item meant.
func FuzzRawStanza(f *testing.F) {
	for _, s := range rawSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	comp := newEnc(f, ModeComponent)
	client := newEnc(f, ModeClient)
	f.Fuzz(func(t *testing.T, s string, clientMode bool) {
		e := comp
		if clientMode {
			e = client
		}
		body := rawItem(s)
		out, _, err := e.Append(nil, body, Meta{MessageID: "m"})
		if err != nil {
			var ie *ItemError
			if !errors.As(err, &ie) || len(out) != 0 {
				t.Fatalf("error %v, %d bytes", err, len(out))
			}
			return
		}
		if err := strictCheck(e, out); err != nil {
			t.Fatalf("oracle refuses what Append wrote for %q: %v\n%s", s, err, out)
		}
		if _, err := sameMeaning(e, s, out); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	})
}

type detailSeed struct {
	field            uint8
	head, tail, rest string
}

func (s detailSeed) vals() []any { return []any{s.field, s.head, s.tail, s.rest} }

var detailSeeds = []detailSeed{
	{uint8(0), "", "", "}"},
	{uint8(1), "a", "\\x", "}"},
	{uint8(2), "", "", ",}"},
	{uint8(3), "\\u00", "", "}} x"},
	{uint8(4), "", "\\ud800", "}"},
	{uint8(0), "", "", `,"type":"bogus"}`},
	{uint8(0), "", "", `,"target":1}`},
	{uint8(0), "&&&&", "", `,"from":"x@evil.org"}`},
	{uint8(0), "\u0001", "", "}"},
}

// FuzzDetail: content (text, subject, thread, status, a payload string)
// never appears in an error's detail, whatever surrounds it.
func FuzzDetail(f *testing.F) {
	for _, s := range detailSeeds {
		f.Add(s.field, s.head, s.tail, s.rest)
	}
	fields := []string{"text", "subject", "thread", "status", "payload"}
	f.Fuzz(func(t *testing.T, field uint8, head, tail, rest string) {
		if strings.ContainsAny(head+tail, "\"") || strings.Contains(head+tail, "SECRET") || strings.Contains(rest, "SECRET") {
			return // the sentinel must stay inside the content string
		}
		if strings.HasSuffix(head+tail, "\\") && !strings.HasSuffix(head+tail, "\\\\") {
			return // would escape the closing quote
		}
		name := fields[int(field)%len(fields)]
		var b strings.Builder
		b.WriteString(`{"target":"a@b",`)
		if name == "status" {
			b.WriteString(`"kind":"presence",`)
		}
		if name == "payload" {
			b.WriteString(`"payload":{"k":"` + head + sentinel + tail + `"}`)
		} else {
			b.WriteString(`"` + name + `":"` + head + sentinel + tail + `"`)
		}
		b.WriteString(rest)
		for _, e := range []*Encoder{newEnc(t, ModeComponent), newEnc(t, ModeClient)} {
			_, _, err := e.Append(nil, []byte(b.String()), Meta{})
			var ie *ItemError
			if errors.As(err, &ie) && strings.Contains(ie.Detail, "SECRET") {
				t.Fatalf("detail quotes content: %s\nbody %s", ie.Detail, b.String())
			}
		}
	})
}

var decodeSeeds = []string{
	`<message from='a@b' to='n@gw' type='chat' id='1'><body>hi &amp;</body><thread>t</thread></message>`,
	`<message type='error' id='x'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>t</text></error></message>`,
	`<message><json xmlns='urn:xmpp:json:0'>{"a":[1,2]}</json></message>`,
	`<message><json xmlns='urn:xmpp:json:0'>{"a":</json></message>`,
	`<message><a><b><c><d><e/></d></c></b></a></message>`,
	`<message><body>` + "\xff\xfe" + `</body></message>`,
	`<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, d, ok := tryStart(wrap+s, "message")
		if !ok {
			return
		}
		ev, err := DecodeMessage(start, d, Limits{MaxTextBytes: 64, MaxPayloadBytes: 64, MaxDepth: 4})
		// The gateway answers a refused message with an error built from
		// the decoded addresses: it must be strict XML whatever they hold.
		reply := AppendMessageError(nil, &ev, "modify", "bad-request", "x")
		if err := builderCheck(reply, "message"); err != nil {
			t.Fatalf("error reply: %v\n%s", err, reply)
		}
		if err != nil {
			return
		}
		if len(ev.Text) > 64 || len(ev.Payload) > 64 {
			t.Fatal("limit exceeded")
		}
		if ev.Payload != nil && !json.Valid(ev.Payload) {
			t.Fatal("invalid payload")
		}
		checkEventJSON(t, &ev)
	})
}

var presenceSeeds = []string{
	`<presence from='a@b/r' to='n@gw' id='p1'><show>away</show><status>out &amp; about</status><priority> 5 </priority></presence>`,
	`<presence from='a@b' type='subscribe'/>`,
	`<presence><priority>999</priority></presence>`,
	`<presence><status>` + strings.Repeat("s", 70) + `</status></presence>`,
	`<presence><show xmlns='urn:x'>x</show><a><b><c><d><e/></d></c></b></a></presence>`,
	`<presence from='a&apos;b' id='&lt;x&gt;'/>`,
}

func FuzzDecodePresence(f *testing.F) {
	for _, s := range presenceSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, d, ok := tryStart(wrap+s, "presence")
		if !ok {
			return
		}
		p, err := DecodePresence(start, d, Limits{MaxTextBytes: 64, MaxDepth: 4})
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) && !builderName(de.Condition) {
				t.Fatalf("condition %q", de.Condition)
			}
			return
		}
		if len(p.Status) > 64 || len(p.Show) > 16 || p.Priority < -128 || p.Priority > 127 {
			t.Fatalf("limits: %+v", p)
		}
		if p.Type == "" {
			t.Fatal("empty type")
		}
		ev := Event{Kind: "presence", ID: p.ID, From: p.From, To: p.To, Type: p.Type, Show: p.Show, Status: p.Status}
		checkEventJSON(t, &ev)
	})
}

func builderName(s string) bool { return plainName(s) }

// checkEventJSON: AppendJSON writes valid JSON whose strings are the
// event's (invalid UTF-8 replaced by U+FFFD).
func checkEventJSON(t *testing.T, ev *Event) {
	t.Helper()
	out := ev.AppendJSON([]byte("x"))[1:]
	if !json.Valid(out) || !utf8.Valid(out) {
		t.Fatalf("invalid event JSON %s", out)
	}
	// UseNumber: a payload may hold numbers no float64 can carry
	// (100E10000 is valid JSON); they are the worker's to read.
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"kind": ev.Kind, "id": ev.ID, "from": ev.From, "to": ev.To, "type": ev.Type,
		"text": ev.Text, "subject": ev.Subject, "thread": ev.Thread, "condition": ev.Condition, "show": ev.Show, "status": ev.Status, "replace": ev.Replace, "encrypted": ev.Encrypted, "room": ev.Room, "nick": ev.Nick} {
		got, _ := m[k].(string)
		if got != strings.ToValidUTF8(v, "\uFFFD") && !(v != "" && !utf8.ValidString(v)) {
			t.Fatalf("%s: %q, want %q", k, got, v)
		}
	}
}

type eventSeed struct {
	kind, id, from, to, typ, text, cond, payload string
	ns                                           int64
}

func (s eventSeed) vals() []any {
	return []any{s.kind, s.id, s.from, s.to, s.typ, s.text, s.cond, s.payload, s.ns}
}

var eventSeeds = []eventSeed{
	{"message", "a1", "a@b/r", "n@gw", "chat", "hi \"\\\n\x01 \u2028", "", `{"k":[1,2]}`, int64(1700000000123456789)},
	{"error", "\xff", "", "", "error", "\xed\xa0\x80", "item-not-found", "", int64(0)},
	{"presence", "", "", "", "", "", "", `"\u0000"`, int64(-62135596800000000)},
	{"message", "", "", "", "", "", "", "{\"a\":\"\xff\"}", int64(253402300800000000)},
}

// FuzzEventJSON: any event whose payload is valid JSON (as DecodeMessage
// guarantees) is written as valid JSON.
func FuzzEventJSON(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add(s.kind, s.id, s.from, s.to, s.typ, s.text, s.cond, s.payload, s.ns)
	}
	f.Fuzz(func(t *testing.T, kind, id, from, to, typ, text, cond, payload string, ns int64) {
		ev := Event{Kind: kind, ID: id, From: from, To: to, Type: typ, Text: text, Subject: text, Thread: id,
			Condition: cond, Show: typ, Status: text}
		if json.Valid([]byte(payload)) && utf8.ValidString(payload) {
			ev.Payload = json.RawMessage(payload)
		}
		if ns != 0 {
			ev.ReceivedAt = time.Unix(0, ns)
		}
		checkEventJSON(t, &ev)
	})
}

type builderSeed [7]string

func (s builderSeed) vals() []any {
	v := make([]any, len(s))
	for i := range s {
		v[i] = s[i]
	}
	return v
}

var builderSeeds = []builderSeed{
	{"a@b/r", "n@gw", "m1", "wait", "resource-constraint", "busy & full", "dnd"},
	{"x'><evil/>", "\x00\xff", "]]>", "bogus", "x'><evil/>", "\uFFFE\r\n\t", ""},
	{"", "", "", "", "", "", ""},
	{"\xed\xa0\x80", "&#0;", "\U0010FFFF", "auth", "UPPER", "\u0085\u2028", "\x7f"},
}

// FuzzBuilders: the stanzas the gateway builds from peer-supplied ids,
// addresses and texts are strict XML.
func FuzzBuilders(f *testing.F) {
	for _, s := range builderSeeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6])
	}
	f.Fuzz(func(t *testing.T, from, to, id, typ, cond, text, show string) {
		checks := []struct {
			out  []byte
			name string
		}{
			{AppendMessageError(nil, &Event{From: from, To: to, ID: id}, typ, cond, text), "message"},
			{AppendPing(nil, from, to, id), "iq"},
			{AppendPresence(nil, from, to, id, typ, show, text), "presence"},
		}
		for i, c := range checks {
			if err := builderCheck(c.out, c.name); err != nil {
				t.Fatalf("%d: %v\n%s", i, err, c.out)
			}
		}
	})
}

func tryStart(s, name string) (start xml.StartElement, d *xml.Decoder, ok bool) {
	d = xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return start, d, false
		}
		if se, isStart := tok.(xml.StartElement); isStart && se.Name.Local == name {
			return se.Copy(), d, true
		}
	}
}

var jidSeeds = []string{"a@b", "a@b.c/r", "A@b", "a@B", "a@b.", "a@xn--bcher-kva.ex", "a@-b", "a@1.2.3.4", "a@b/ r", "a!#$%*+=?^_{|}~\\`@b", "a@b..c", "é@b", "a@b/é", "a@b/c@d/e"}

// FuzzFastJID proves the fast path: whatever it accepts, jid.Parse accepts
// and canonicalises to the same string.
func FuzzFastJID(f *testing.F) {
	for _, s := range jidSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !fastJID([]byte(s)) {
			return
		}
		j, err := jid.Parse(s)
		if err != nil {
			t.Fatalf("fast path accepted %q, jid.Parse: %v", s, err)
		}
		if j.String() != s {
			t.Fatalf("fast path accepted %q, canonical %q", s, j.String())
		}
	})
}
