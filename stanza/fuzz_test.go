package stanza

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
)

var fuzzSeeds = []string{
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

func FuzzAppend(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false)
	}
	comp := newEnc(f, ModeComponent)
	client := newEnc(f, ModeClient)
	f.Fuzz(func(t *testing.T, body []byte, clientMode bool) {
		e := comp
		if clientMode {
			e = client
		}
		dst := []byte("<pre/>")
		out, info, err := e.Append(dst, body, Meta{})
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
		p := parseOne(t, out[len(dst):])
		if p.Attrs["id"] != info.ID {
			t.Fatalf("id %q vs %q", p.Attrs["id"], info.ID)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if _, raw := m["stanza"]; raw {
			return
		}
		var text *string
		if v, ok := m["text"]; ok {
			json.Unmarshal(v, &text)
		}
		if text != nil && (p.Body == nil || *p.Body != *text) {
			t.Fatalf("text %q did not round-trip: %v", *text, p.Body)
		}
		if v, ok := m["payload"]; ok && string(v) != "null" {
			if p.JSON == nil || *p.JSON != string(v) {
				t.Fatalf("payload %s did not round-trip", v)
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
		start, d, ok := tryStart(wrap + s)
		if !ok {
			return
		}
		ev, err := DecodeMessage(start, d, Limits{MaxTextBytes: 64, MaxPayloadBytes: 64, MaxDepth: 4})
		if err != nil {
			return
		}
		if len(ev.Text) > 64 || len(ev.Payload) > 64 {
			t.Fatal("limit exceeded")
		}
		if ev.Payload != nil && !json.Valid(ev.Payload) {
			t.Fatal("invalid payload")
		}
		out := ev.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid event JSON %s", out)
		}
	})
}

func tryStart(s string) (start xml.StartElement, d *xml.Decoder, ok bool) {
	d = xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return start, d, false
		}
		if se, isStart := tok.(xml.StartElement); isStart && se.Name.Local == "message" {
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
