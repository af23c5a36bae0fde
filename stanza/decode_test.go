package stanza

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// startOf reads the first start element of s and returns it with the
// decoder positioned after it, as mellium's handlers get it.
func startOf(t testing.TB, s string) (xml.StartElement, *xml.Decoder) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no start element in %q: %v", s, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local != "stream" {
			return se.Copy(), d
		}
	}
}

const wrap = `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>`

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		in   string
		lim  Limits
		want Event
		cond string
	}{
		0: {in: `<message from='a@example.org/p' to='n@gw' id='i1' type='chat'><body>hi &amp; &lt;</body><thread>t</thread><subject>s</subject></message>`,
			want: Event{Kind: "message", ID: "i1", From: "a@example.org/p", To: "n@gw", Type: "chat", Text: "hi & <", Subject: "s", Thread: "t"}},
		1: {in: `<message from='a@b' to='n@gw'><body>x</body><body xml:lang='de'>y</body></message>`,
			want: Event{Kind: "message", From: "a@b", To: "n@gw", Type: "normal", Text: "x"}},
		2: {in: `<message from='a@b' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			want: Event{From: "a@b", Type: "chat"}},
		3: {in: `<message from='a@b'><json xmlns='urn:xmpp:json:0'>{"k":1}</json></message>`,
			want: Event{Kind: "message", From: "a@b", Type: "normal", Payload: json.RawMessage(`{"k":1}`)}},
		4: {in: `<message from='a@b' to='n@gw' type='error' id='ours'><body>orig</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>`,
			want: Event{Kind: "error", ID: "ours", From: "a@b", To: "n@gw", Type: "error", Text: "gone", Condition: "service-unavailable"}},
		5: {in: `<message from='a@b' type='weird'><body>x</body><x xmlns='urn:y'><body>inner</body></x></message>`,
			want: Event{Kind: "message", From: "a@b", Type: "normal", Text: "x"}},
		6: {in: `<message from='a@b'><body>` + strings.Repeat("x", 11) + `</body></message>`, lim: Limits{MaxTextBytes: 10},
			want: Event{From: "a@b", Type: "normal"}, cond: "policy-violation"},
		7: {in: `<message from='a@b'><json xmlns='urn:xmpp:json:0'>{bad</json></message>`,
			want: Event{From: "a@b", Type: "normal"}, cond: "not-acceptable"},
		8: {in: `<message from='a@b'><a xmlns='urn:a'><a><a><a/></a></a></a><body>x</body></message>`, lim: Limits{MaxDepth: 3},
			want: Event{From: "a@b", Type: "normal"}, cond: "policy-violation"},
		9: {in: `<message from='a@b'><json xmlns='urn:xmpp:json:0'>` + strings.Repeat("1", 20) + `</json></message>`, lim: Limits{MaxPayloadBytes: 10},
			want: Event{From: "a@b", Type: "normal"}, cond: "policy-violation"},
		10: {in: `<message><body xmlns='urn:other'>x</body></message>`, want: Event{Type: "normal"}},
		11: {in: `<message><body/></message>`, want: Event{Kind: "message", Type: "normal"}},
		// Addressing attributes are bounded (the whole stanza is still read).
		12: {in: `<message from='a@b' id='` + strings.Repeat("i", MaxInIDBytes) + `'><body>x</body></message>`,
			want: Event{Kind: "message", From: "a@b", ID: strings.Repeat("i", MaxInIDBytes), Type: "normal", Text: "x"}},
		13: {in: `<message from='a@b' id='` + strings.Repeat("i", MaxInIDBytes+1) + `'><body>x</body></message>`,
			want: Event{From: "a@b", ID: strings.Repeat("i", MaxInIDBytes+1), Type: "normal"}, cond: "policy-violation"},
		14: {in: `<message from='a@b' to='` + strings.Repeat("n", MaxInJIDBytes+1) + `'><body>x</body></message>`,
			want: Event{From: "a@b", To: strings.Repeat("n", MaxInJIDBytes+1), Type: "normal"}, cond: "jid-malformed"},
		// Delivery outcomes: receipts and markers become receipt events
		// carrying the id they acknowledge.
		15: {in: `<message from='a@b/p' to='n@gw' id='r'><received xmlns='urn:xmpp:receipts' id='ours'/></message>`,
			want: Event{Kind: "receipt", ID: "ours", From: "a@b/p", To: "n@gw", Type: "normal", Status: "received"}},
		16: {in: `<message from='a@b/p' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='ours'/></message>`,
			want: Event{Kind: "receipt", ID: "ours", From: "a@b/p", Type: "chat", Status: "displayed"}},
		17: {in: `<message from='a@b/p'><acknowledged xmlns='urn:xmpp:chat-markers:0' id='o'/><received xmlns='urn:xmpp:receipts' id='x'/></message>`,
			want: Event{Kind: "receipt", ID: "o", From: "a@b/p", Type: "normal", Status: "acknowledged"}},
		18: {in: `<message from='a@b/p'><received xmlns='urn:xmpp:chat-markers:0' id='m'/></message>`,
			want: Event{Kind: "receipt", ID: "m", From: "a@b/p", Type: "normal", Status: "received"}},
		// a receipt without an id, or with one over the bound, is nothing
		19: {in: `<message from='a@b/p'><received xmlns='urn:xmpp:receipts'/></message>`,
			want: Event{From: "a@b/p", Type: "normal"}},
		20: {in: `<message from='a@b/p'><received xmlns='urn:xmpp:receipts' id='` + strings.Repeat("i", MaxInIDBytes+1) + `'/></message>`,
			want: Event{From: "a@b/p", Type: "normal"}},
		// markable and unknown markers are not receipts
		21: {in: `<message from='a@b/p'><markable xmlns='urn:xmpp:chat-markers:0'/><seen xmlns='urn:xmpp:chat-markers:0' id='x'/></message>`,
			want: Event{From: "a@b/p", Type: "normal"}},
		// a message with a body is a message, whatever else it carries
		22: {in: `<message from='a@b/p' id='m1' type='chat'><body>hi</body><received xmlns='urn:xmpp:receipts' id='x'/><request xmlns='urn:xmpp:receipts'/></message>`,
			want: Event{Kind: "message", ID: "m1", From: "a@b/p", Type: "chat", Text: "hi", WantsReceipt: true}},
		// no receipt without an id to answer, nor in groupchat
		23: {in: `<message from='a@b/p'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`,
			want: Event{Kind: "message", From: "a@b/p", Type: "normal", Text: "hi"}},
		24: {in: `<message from='r@c/n' id='g' type='groupchat'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`,
			want: Event{Kind: "message", ID: "g", From: "r@c/n", Type: "groupchat", Text: "hi"}},
		// corrections
		25: {in: `<message from='a@b/p' id='m2'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`,
			want: Event{Kind: "message", ID: "m2", From: "a@b/p", Type: "normal", Text: "fixed", Replace: "m1"}},
		26: {in: `<message from='a@b/p'><body>x</body><replace xmlns='urn:xmpp:message-correct:0' id='` + strings.Repeat("i", MaxInIDBytes+1) + `'/></message>`,
			want: Event{From: "a@b/p", Type: "normal"}, cond: "policy-violation"},
		// end-to-end encrypted: an event without the fallback body
		27: {in: `<message from='a@b/p' id='e1' type='chat'><body>I sent you an OMEMO encrypted message</body><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>AAA</key><iv>BBB</iv></header><payload>CCC</payload></encrypted><request xmlns='urn:xmpp:receipts'/></message>`,
			want: Event{Kind: "message", ID: "e1", From: "a@b/p", Type: "chat", Encrypted: "omemo", WantsReceipt: true}},
		28: {in: `<message from='a@b/p' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/><payload>CCC</payload></encrypted></message>`,
			want: Event{Kind: "message", From: "a@b/p", Type: "chat", Encrypted: "omemo"}},
		// OMEMO key transport (no payload) is not a message
		29: {in: `<message from='a@b/p' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted></message>`,
			want: Event{From: "a@b/p", Type: "chat"}},
		30: {in: `<message from='a@b/p' type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp><body>This message is encrypted</body></message>`,
			want: Event{Kind: "message", From: "a@b/p", Type: "chat", Encrypted: "openpgp"}},
		31: {in: `<message from='a@b/p' type='chat'><body>fallback</body><x xmlns='jabber:x:encrypted'>PGP</x></message>`,
			want: Event{Kind: "message", From: "a@b/p", Type: "chat", Encrypted: "openpgp"}},
		// history a room replays, or offline storage: Delayed
		33: {in: `<message from='r@c/bob' type='groupchat' id='h'><body>old</body><delay xmlns='urn:xmpp:delay' from='r@c' stamp='2026-11-29T10:00:00Z'/></message>`,
			want: Event{Kind: "message", ID: "h", From: "r@c/bob", Type: "groupchat", Text: "old", Delayed: true}},
		// the id a room gave the message
		34: {in: `<message from='r@c/notices' type='groupchat' id='ours'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='ours'/><stanza-id xmlns='urn:xmpp:sid:0' id='room-7' by='r@c'/></message>`,
			want: Event{Kind: "message", ID: "ours", From: "r@c/notices", Type: "groupchat", Text: "x", StanzaID: "room-7", StanzaIDBy: "r@c"}},
		// an extension in the wrong namespace is ignored
		32: {in: `<message from='a@b/p'><body>x</body><encrypted xmlns='urn:other'><payload/></encrypted><replace id='q'/></message>`,
			want: Event{Kind: "message", From: "a@b/p", Type: "normal", Text: "x"}},
	}
	for i, tc := range tests {
		start, d := startOf(t, wrap+tc.in+`<message><body>next</body></message>`)
		ev, err := DecodeMessage(start, d, tc.lim)
		var de *DecodeError
		switch {
		case tc.cond == "" && err != nil:
			t.Errorf("%d: %v", i, err)
		case tc.cond != "" && (!errors.As(err, &de) || de.Condition != tc.cond || de.Type != "modify"):
			t.Errorf("%d: err %v, want %s", i, err, tc.cond)
		}
		if tc.cond == "" {
			if string(ev.Payload) != string(tc.want.Payload) {
				t.Errorf("%d: payload %s", i, ev.Payload)
			}
			ev.Payload, tc.want.Payload = nil, nil
			if !reflect.DeepEqual(ev, tc.want) {
				t.Errorf("%d:\n got %+v\nwant %+v", i, ev, tc.want)
			}
		} else if ev.From != tc.want.From {
			t.Errorf("%d: addressing lost on error: %+v", i, ev)
		}
		// The element was consumed to its end: the next one reads cleanly.
		start2, err := nextStart(d)
		if err != nil || start2.Name.Local != "message" {
			t.Fatalf("%d: stream not usable after decode: %v", i, err)
		}
		ev2, err := DecodeMessage(start2, d, Limits{})
		if err != nil || ev2.Text != "next" {
			t.Errorf("%d: next message %+v %v", i, ev2, err)
		}
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

func TestDecodeMessageEOF(t *testing.T) {
	start, d := startOf(t, `<message><body>x`)
	if _, err := DecodeMessage(start, d, Limits{}); err == nil {
		t.Fatalf("err %v", err)
	}
	start, d = startOf(t, `<presence><status>x`)
	if _, err := DecodePresence(start, d, Limits{}); err == nil {
		t.Fatal("no error at end of input")
	}
	if _, err := DecodeMessage(xml.StartElement{Name: xml.Name{Local: "message"}}, &tokens{toks: []xml.Token{xml.CharData("x")}}, Limits{}); !errors.Is(err, ErrUnexpectedEOF) {
		t.Fatalf("err %v, want ErrUnexpectedEOF", err)
	}
	r := &tokens{toks: []xml.Token{xml.CharData("x"), xml.EndElement{Name: xml.Name{Local: "presence"}}}}
	if _, err := DecodePresence(xml.StartElement{Name: xml.Name{Local: "presence"}}, r, Limits{}); err != nil || len(r.toks) != 0 {
		t.Fatalf("err %v", err)
	}
}

// tokens is a scripted xml.TokenReader.
type tokens struct{ toks []xml.Token }

func (r *tokens) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}

func TestDecodePresence(t *testing.T) {
	tests := []struct {
		in   string
		want Presence
		cond string
	}{
		0: {in: `<presence from='a@b/r' to='n@gw' id='p1'><show>away</show><status>out &amp; about</status><priority> 5 </priority></presence>`,
			want: Presence{From: "a@b/r", To: "n@gw", ID: "p1", Type: "available", Show: "away", Status: "out & about", Priority: 5}},
		1: {in: `<presence from='a@b' type='subscribe'/>`, want: Presence{From: "a@b", Type: "subscribe"}},
		2: {in: `<presence from='a@b'><priority>999</priority></presence>`, want: Presence{From: "a@b", Type: "available"}, cond: "bad-request"},
		3: {in: `<presence from='a@b'><status>` + strings.Repeat("s", 300<<10) + `</status></presence>`, want: Presence{From: "a@b", Type: "available"}, cond: "policy-violation"},
		4: {in: `<presence from='a@b' id='` + strings.Repeat("i", MaxInIDBytes+1) + `'/>`, want: Presence{From: "a@b", Type: "available"}, cond: "policy-violation"},
		// XEP-0045: a self-presence with a nick the room assigned
		5: {in: `<presence from='r@c/n2' to='n@gw'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/><status code='110'/><status code='210'/><status code='x'/></x></presence>`,
			want: Presence{From: "r@c/n2", To: "n@gw", Type: "available", MUC: &MUCUser{Codes: []int{110, 210}, Affiliation: "member", Role: "participant"}}},
		// kicked; a destroyed room
		6: {in: `<presence from='r@c/n' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'><reason>bye</reason></item><status code='307'/><status code='110'/></x></presence>`,
			want: Presence{From: "r@c/n", Type: "unavailable", MUC: &MUCUser{Codes: []int{307, 110}, Affiliation: "none", Role: "none"}}},
		7: {in: `<presence from='r@c/n' type='unavailable'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><destroy jid='s@c'/><status code='110'/></x></presence>`,
			want: Presence{From: "r@c/n", Type: "unavailable", MUC: &MUCUser{Codes: []int{110}, Affiliation: "none", Role: "none", Destroyed: true}}},
		// a join refused: the condition
		8: {in: `<presence from='r@c/n' type='error'><x xmlns='http://jabber.org/protocol/muc'/><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>taken</text></error></presence>`,
			want: Presence{From: "r@c/n", Type: "error", Error: "conflict"}},
		9: {in: `<presence from='r@c/n' type='error'><error type='auth'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text><registration-required xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`,
			want: Presence{From: "r@c/n", Type: "error", Error: "registration-required"}},
		// status codes are bounded; a muc#user x elsewhere is not the room's
		10: {in: `<presence from='r@c/n'><x xmlns='http://jabber.org/protocol/muc#user'>` + strings.Repeat(`<status code='100'/>`, 40) + `</x><y xmlns='urn:y'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></y></presence>`,
			want: Presence{From: "r@c/n", Type: "available", MUC: &MUCUser{Codes: []int{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100}}}},
	}
	for i, tc := range tests {
		start, d := startOf(t, wrap+tc.in)
		p, err := DecodePresence(start, d, Limits{})
		var de *DecodeError
		if tc.cond == "" && err != nil || tc.cond != "" && (!errors.As(err, &de) || de.Condition != tc.cond) {
			t.Errorf("%d: err %v want %q", i, err, tc.cond)
		}
		if tc.cond == "" && !reflect.DeepEqual(p, tc.want) || tc.cond != "" && p.From != tc.want.From {
			t.Errorf("%d:\n got %+v\nwant %+v", i, p, tc.want)
		}
	}
}

func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 22, 11, 0, 0, 123456789, time.FixedZone("x", 3600))
	ev := Event{Kind: "message", ID: "a1", From: "alice@example.org/phone", To: "notices@gw.example.org",
		Type: "chat", Text: "hello \"\\\n\t\x01 é 😀 \u2028 \xff", Payload: json.RawMessage(`{"k":1}`), ReceivedAt: at}
	got := string(ev.AppendJSON([]byte("x")))
	want := `x{"kind":"message","id":"a1","from":"alice@example.org/phone","to":"notices@gw.example.org","type":"chat","text":"hello \"\\\n\t\u0001 é 😀 ` + "\u2028" + ` \ufffd","payload":{"k":1},"received_at":"2026-11-22T10:00:00.123456Z"}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got[1:]), &m); err != nil {
		t.Fatal(err)
	}
	e2 := Event{Kind: "error", ID: "x", Condition: "item-not-found", Show: "s", Status: "t", Subject: "u", Thread: "v"}
	if got := string(e2.AppendJSON(nil)); got != `{"kind":"error","id":"x","subject":"u","thread":"v","condition":"item-not-found","show":"s","status":"t"}` {
		t.Fatal(got)
	}
	e3 := Event{Kind: "message", ID: "m2", Type: "chat", Replace: "m1", Encrypted: "omemo", WantsReceipt: true, Delayed: true, Room: "r@c", Nick: "bob"}
	if got := string(e3.AppendJSON(nil)); got != `{"kind":"message","id":"m2","type":"chat","room":"r@c","nick":"bob","replace":"m1","encrypted":"omemo"}` {
		t.Fatal(got)
	}
	e4 := Event{Kind: "receipt", ID: "ours", From: "a@b/p", To: "n@gw", Type: "chat", Status: "displayed", ReceivedAt: at}
	if got := string(e4.AppendJSON(nil)); got != `{"kind":"receipt","id":"ours","from":"a@b/p","to":"n@gw","type":"chat","status":"displayed","received_at":"2026-11-22T10:00:00.123456Z"}` {
		t.Fatal(got)
	}
	if got := string((&Event{}).AppendJSON(nil)); got != `{}` {
		t.Fatal(got)
	}
}

func TestBuilders(t *testing.T) {
	tests := []struct{ got, want string }{
		0: {string(AppendPing(nil, "gw", "example.org", "p1")), `<iq type='get' from='gw' to='example.org' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`},
		1: {string(AppendPing(nil, "", "", "p'1")), `<iq type='get' id='p&apos;1'><ping xmlns='urn:xmpp:ping'/></iq>`},
		2: {string(AppendPresence(nil, "n@gw", "a@b", "i", "subscribed", "", "")), `<presence from='n@gw' to='a@b' type='subscribed' id='i'/>`},
		3: {string(AppendPresence(nil, "n@gw", "", "", "", "dnd", "a<b\x00")), "<presence from='n@gw'><show>dnd</show><status>a&lt;b\uFFFD</status></presence>"},
		4: {string(AppendMessageError(nil, &Event{From: "a@b/r", To: "n@gw", ID: "m1"}, "wait", "resource-constraint", "busy & full")),
			`<message type='error' from='n@gw' to='a@b/r' id='m1'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>busy &amp; full</text></error></message>`},
		5: {string(AppendMessageError(nil, &Event{From: "a@b", To: "n@gw"}, "bogus", "x'><evil/>", "")),
			`<message type='error' from='n@gw' to='a@b'><error type='cancel'><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`},
		6: {string(AppendReceipt(nil, &Event{From: "a@b/r", To: "n@gw", ID: "m'1", Type: "chat"}, true)),
			`<message from='n@gw' to='a@b/r' type='chat'><received xmlns='urn:xmpp:receipts' id='m&apos;1'/></message>`},
		7: {string(AppendReceipt(nil, &Event{From: "a@b/r", To: "bot@b/gw", ID: "m1", Type: "normal"}, false)),
			`<message to='a@b/r'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`},
		8: {string(AppendMUCJoin(nil, "n@gw", "ops@conf.example.org/notices", "j1", "s&cret")),
			`<presence from='n@gw' to='ops@conf.example.org/notices' id='j1'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/><password>s&amp;cret</password></x></presence>`},
		9: {string(AppendMUCJoin(nil, "", "ops@conf.example.org/notices", "", "")),
			`<presence to='ops@conf.example.org/notices'><x xmlns='http://jabber.org/protocol/muc'><history maxchars='0'/></x></presence>`},
	}
	for i, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%d:\n got %s\nwant %s", i, tc.got, tc.want)
		}
		parseOne(t, []byte(tc.got))
	}
}

// TestDecodeMessagePayloadUTF8: a payload of invalid UTF-8 (possible with a
// token reader other than encoding/xml's) is refused: json.Valid alone
// accepts it, and the event would not be UTF-8 JSON.
func TestDecodeMessagePayloadUTF8(t *testing.T) {
	json := xml.Name{Space: nsJSON, Local: "json"}
	r := &tokens{toks: []xml.Token{xml.StartElement{Name: json}, xml.CharData("\"\xff\""), xml.EndElement{Name: json},
		xml.EndElement{Name: xml.Name{Local: "message"}}}}
	_, err := DecodeMessage(xml.StartElement{Name: xml.Name{Local: "message"}}, r, Limits{})
	var de *DecodeError
	if !errors.As(err, &de) || de.Condition != "not-acceptable" {
		t.Fatalf("err %v", err)
	}
}
