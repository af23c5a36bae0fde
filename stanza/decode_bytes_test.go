package stanza

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The differential oracle of MessageDecoder: DecodeMessage over
// encoding/xml, inside a stream whose default namespace is
// jabber:component:accept, with what mellium's read loop refuses on top
// (comments, processing instructions, directives and elements in the
// streams namespace end the stream).

// tokenDecode decodes s, which must be exactly one <message/> element of
// the stream, the way the read loop's token path does.
func tokenDecode(s string, lim Limits) (Event, error) {
	d := xml.NewDecoder(strings.NewReader(wrap + s))
	if _, err := d.Token(); err != nil {
		return Event{}, err
	}
	r := melliumish{d}
	tok, err := r.Token()
	if err != nil {
		return Event{}, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Local != "message" || start.Name.Space != nsComponent {
		return Event{}, fmt.Errorf("not a message of the stream: %#v", tok)
	}
	ev, err := DecodeMessage(start, r, lim)
	if err != nil {
		return ev, err
	}
	if off := d.InputOffset(); off != int64(len(wrap)+len(s)) {
		return ev, fmt.Errorf("the element ends at %d of %d bytes", off-int64(len(wrap)), len(s))
	}
	return ev, nil
}

// melliumish refuses the tokens mellium's stream reader refuses anywhere in
// a stanza.
type melliumish struct{ r xml.TokenReader }

func (m melliumish) Token() (xml.Token, error) {
	tok, err := m.r.Token()
	switch t := tok.(type) {
	case xml.StartElement:
		if t.Name.Space == nsStream {
			return nil, errors.New("element in the streams namespace")
		}
	case xml.EndElement:
		if t.Name.Space == nsStream {
			return nil, errors.New("end element in the streams namespace")
		}
	case xml.Comment, xml.ProcInst, xml.Directive:
		return nil, fmt.Errorf("%T", tok)
	}
	return tok, err
}

// sameEvent reports how two events differ, "" if they do not.
func sameEvent(got, want Event) string {
	if !bytes.Equal(got.Payload, want.Payload) || (got.Payload == nil) != (want.Payload == nil) {
		return fmt.Sprintf("payload %q, want %q", got.Payload, want.Payload)
	}
	got.Payload, want.Payload = nil, nil
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
	}
	return ""
}

// fastLimits are the limits the differential tests run under, chosen by
// a fuzzed byte: the defaults, small ones, tiny ones.
var fastLimits = []Limits{{}, {MaxTextBytes: 64, MaxPayloadBytes: 64, MaxDepth: 4}, {MaxTextBytes: 1, MaxPayloadBytes: 1, MaxDepth: 1}}

// checkFast runs d and the oracle on s and fails t if d accepted s and the
// oracle disagrees. It reports whether d accepted s.
func checkFast(t *testing.T, d *MessageDecoder, s string) bool {
	t.Helper()
	ev, err := d.Decode([]byte(s))
	if err != nil {
		if err != ErrNotFast {
			t.Fatalf("Decode(%q): %v, want nil or ErrNotFast", s, err)
		}
		return false
	}
	want, werr := tokenDecode(s, d.Limits)
	if werr != nil {
		t.Fatalf("Decode accepted %q; the token path: %v", s, werr)
	}
	if diff := sameEvent(ev, want); diff != "" {
		t.Fatalf("Decode(%q) differs from DecodeMessage: %s", s, diff)
	}
	return true
}

// bytesSeeds are the seeds of FuzzDecodeMessageBytes and the cases of
// TestMessageDecoderAgrees; fast says whether MessageDecoder must take
// them with the default limits.
var bytesSeeds = []struct {
	in   string
	fast bool
}{
	// what Prosody routes to a component: a chat message of the bench
	{`<message type='chat' to='notices@gw.localhost' id='i12' from='alice@localhost/bench' xml:lang='en'><body>Hello, this is customer message number 100012, asking about the order I placed on Monday morning.</body></message>`, true},
	{`<message from='a@example.org/p' to='n@gw' id='i1' type='chat'><body>hi &amp; &lt;</body><thread>t</thread><subject>s</subject></message>`, true},
	{`<message from='a@b' to='n@gw'><body>x</body><body xml:lang='de'>y</body></message>`, true},
	{`<message from='a@b' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
	{`<message from='a@b'><json xmlns='urn:xmpp:json:0'>{"k":1}</json></message>`, true},
	{`<message from='a@b' to='n@gw' type='error' id='ours'><body>orig</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>`, true},
	{`<message from='a@b' type='weird'><body>x</body><x xmlns='urn:y'><body>inner</body></x></message>`, true},
	{`<message><body xmlns='urn:other'>x</body></message>`, true},
	{`<message><body/></message>`, true},
	{`<message/>`, true},
	{`<message from='a@b/p' to='n@gw' id='r'><received xmlns='urn:xmpp:receipts' id='ours'/></message>`, true},
	{`<message from='a@b/p' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='ours'/></message>`, true},
	{`<message from='a@b/p'><acknowledged xmlns='urn:xmpp:chat-markers:0' id='o'/><received xmlns='urn:xmpp:receipts' id='x'/></message>`, true},
	{`<message from='a@b/p'><markable xmlns='urn:xmpp:chat-markers:0'/><seen xmlns='urn:xmpp:chat-markers:0' id='x'/></message>`, true},
	{`<message from='a@b/p' id='m1' type='chat'><body>hi</body><received xmlns='urn:xmpp:receipts' id='x'/><request xmlns='urn:xmpp:receipts'/></message>`, true},
	{`<message from='r@c/n' id='g' type='groupchat'><body>hi</body><request xmlns='urn:xmpp:receipts'/></message>`, true},
	{`<message from='a@b/p' id='m2'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`, true},
	{`<message from='a@b/p' id='e1' type='chat'><body>I sent you an OMEMO encrypted message</body><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>AAA</key><iv>BBB</iv></header><payload>CCC</payload></encrypted><request xmlns='urn:xmpp:receipts'/><store xmlns='urn:xmpp:hints'/></message>`, true},
	{`<message from='a@b/p' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'><keys jid='n@gw'><key rid='2' kex='true'>AAA</key></keys></header><payload>CCC</payload></encrypted></message>`, true},
	{`<message from='a@b/p' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted></message>`, true},
	{`<message from='a@b/p' type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp><body>This message is encrypted</body></message>`, true},
	{`<message from='a@b/p' type='chat'><body>fallback</body><x xmlns='jabber:x:encrypted'>PGP</x></message>`, true},
	{`<message from='r@c/bob' type='groupchat' id='h'><body>old</body><delay xmlns='urn:xmpp:delay' from='r@c' stamp='2026-11-29T10:00:00Z'/></message>`, true},
	{`<message from='r@c/notices' type='groupchat' id='ours' xml:lang='en'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='ours'/><stanza-id xmlns='urn:xmpp:sid:0' id='room-7' by='r@c'/><x xmlns='http://jabber.org/protocol/muc#user'><item jid='b@c/d'/></x></message>`, true},
	{`<message from='r@c' type='groupchat'><subject>topic</subject></message>`, true},
	{`<message from='a@b/p'><body>x</body><encrypted xmlns='urn:other'><payload/></encrypted><replace id='q'/></message>`, true},
	// entities, character references, CDATA, quoting, whitespace
	{`<message from='a&amp;b' id="q&quot;'" to='&lt;&gt;&apos;'><body>&#65;&#x42;&#x1F600;&#xd;&#10;&#9;é😀 "'&gt;</body></message>`, true},
	{"<message\n\tfrom = 'a@b'\r\n type=\"chat\" ><body>x<![CDATA[<&>]]]]><![CDATA[>]]>y</body  ></message >", true},
	{"<message from='a>b' to=\"c>d\"><body a='>' b=\"'\">]]&gt; ]&#93;> ]]]</body>\n \t</message>", true},
	{`<message><body><![CDATA[]]></body><thread><![CDATA[t]]></thread></message>`, true},
	{`<message xmlns='jabber:component:accept'><body xmlns=''>x</body><subject xmlns='jabber:client'>s</subject></message>`, true},
	{`<message><a><b><c><d><e/></d></c></b></a><body>deep</body></message>`, true},
	{`<message><body>` + strings.Repeat("x", 300) + `</body></message>`, true},
	// left to the token decoder
	{`<message><body>` + "\xff\xfe" + `</body></message>`, false},
	{`<message><body>a` + "\x01" + `</body></message>`, false},
	{`<message><body>a` + "\r\n" + `b</body></message>`, false},
	{`<message><body>&#0;&#xFFFE;</body></message>`, false},
	{`<message><body>&#xD800;</body></message>`, false},
	{`<message><body>&secret;</body></message>`, false},
	{`<message><body>&#X41;</body></message>`, false},
	{`<message><body>]]></body></message>`, false},
	{`<message><!-- c --><body>x</body></message>`, false},
	{`<message><?pi x?><body>x</body></message>`, false},
	{`<message><!DOCTYPE x><body>x</body></message>`, false},
	{`<m:message xmlns:m='jabber:component:accept'><m:body>x</m:body></m:message>`, false},
	{`<message xmlns:p='urn:p'><p:x/><body>x</body></message>`, false},
	{`<message><x:/><body>x</body></message>`, false},
	{`<message><stream:error/></message>`, false},
	{`<message><x xmlns='http://etherx.jabber.org/streams'/></message>`, false},
	{`<message from='a' from='b'><body>x</body></message>`, false},
	{`<message xml:from='gw.example.org' from='a@b'><body>x</body></message>`, false},
	{`<message from='a'to='b'><body>x</body></message>`, false},
	{`<message from=a><body>x</body></message>`, false},
	{`<message><body>x</bod></message>`, false},
	{`<message><body>x</body>`, false},
	{`<message><body>x</body></message><message/>`, false},
	{`<message xmlns='jabber:client'><body>x</body></message>`, false},
	{`<messages/>`, false},
	{`<presence/>`, false},
	{`<message><xmlns/></message>`, false},
	{`<message><é/></message>`, false},
	{`<message from='` + strings.Repeat("a", MaxInJIDBytes+1) + `'/>`, false},
	{`<message><json xmlns='urn:xmpp:json:0'>{bad</json></message>`, false},
	{`<message><body>` + strings.Repeat("x", DefaultMaxInTextBytes+1) + `</body></message>`, false},
	{`<message>` + strings.Repeat("<a>", DefaultMaxDepth+1) + strings.Repeat("</a>", DefaultMaxDepth+1) + `</message>`, false},
}

func TestMessageDecoderAgrees(t *testing.T) {
	d := &MessageDecoder{NS: nsComponent}
	for i, tc := range bytesSeeds {
		if got := checkFast(t, d, tc.in); got != tc.fast {
			_, err := tokenDecode(tc.in, d.Limits)
			t.Errorf("%d: fast %v, want %v (token path: %v): %q", i, got, tc.fast, err, tc.in)
		}
	}
	// Nested to the depth limit: taken; one more level: left.
	at := `<message>` + strings.Repeat("<a>", DefaultMaxDepth) + strings.Repeat("</a>", DefaultMaxDepth) + `</message>`
	if !checkFast(t, d, at) {
		t.Error("nesting at the limit left to the token decoder")
	}
}

// TestMessageDecoderOwnsItsStrings: nothing an event holds points into the
// element or the decoder's buffers, which the next call reuses.
func TestMessageDecoderOwnsItsStrings(t *testing.T) {
	d := &MessageDecoder{NS: nsComponent}
	elem := []byte(`<message from='a@b/p' to='n@gw' id='i&amp;1' type='chat'><body>hello &lt;3</body><subject>s</subject><thread>t</thread><json xmlns='urn:xmpp:json:0'>{"k":1}</json><replace xmlns='urn:xmpp:message-correct:0' id='r1'/><stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='x@y'/></message>`)
	ev, err := d.Decode(elem)
	if err != nil {
		t.Fatal(err)
	}
	want := ev
	want.Payload = bytes.Clone(ev.Payload)
	for i := range elem {
		elem[i] = 'z'
	}
	other := []byte(`<message from='zzzzzzzz' to='zzzzz' id='zzzz' type='groupchat'><body>zzzzzzzzzzzzzz</body><subject>z</subject><thread>z</thread><json xmlns='urn:xmpp:json:0'>[9]</json></message>`)
	if _, err := d.Decode(other); err != nil {
		t.Fatal(err)
	}
	if diff := sameEvent(ev, want); diff != "" {
		t.Fatal(diff)
	}
	if ev.ID != "i&1" || ev.Text != "hello <3" || string(ev.Payload) != `{"k":1}` || ev.Replace != "r1" || ev.StanzaIDBy != "x@y" {
		t.Fatalf("%+v", ev)
	}
}

// TestMessageDecoderAllocs: one allocation for all of a message's strings.
func TestMessageDecoderAllocs(t *testing.T) {
	d := &MessageDecoder{NS: nsComponent}
	elem := []byte(bytesSeeds[0].in)
	n := testing.AllocsPerRun(100, func() {
		if _, err := d.Decode(elem); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Fatalf("%v allocations per message, want 1", n)
	}
}

// FuzzDecodeMessageBytes: whatever MessageDecoder takes, DecodeMessage over
// encoding/xml (as the read loop would run it) takes too, with the same
// event, and the element ends where the bytes do. The decoder is reused,
// and an event must survive the next call.
func FuzzDecodeMessageBytes(f *testing.F) {
	for _, s := range bytesSeeds {
		f.Add(s.in, uint8(0))
		f.Add(s.in, uint8(1))
	}
	d := &MessageDecoder{NS: nsComponent}
	f.Fuzz(func(t *testing.T, s string, lim uint8) {
		d.Limits = fastLimits[int(lim)%len(fastLimits)]
		ev, err := d.Decode([]byte(s))
		if err != nil {
			if err != ErrNotFast {
				t.Fatalf("%v, want nil or ErrNotFast", err)
			}
			return
		}
		keep := ev
		keep.Payload = bytes.Clone(ev.Payload)
		_, _ = d.Decode([]byte(bytesSeeds[1].in)) // reuses the buffers
		if diff := sameEvent(ev, keep); diff != "" {
			t.Fatalf("the next call changed the event: %s", diff)
		}
		checkFast(t, d, s)
	})
}

// BenchmarkDecodeMessageBytes is BenchmarkDecodeMessage's message through
// MessageDecoder.
func BenchmarkDecodeMessageBytes(b *testing.B) {
	for _, tc := range []struct{ name, msg string }{
		{"bench", bytesSeeds[0].in},
		{"json", `<message from='alice@example.org/phone' to='notices@gw.example.org' type='chat' id='a1'><body>` +
			strings.Repeat("Status update: ", 6) + `</body><json xmlns='urn:xmpp:json:0'>{"k":1,"v":[1,2,3]}</json><active xmlns='http://jabber.org/protocol/chatstates'/></message>`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := &MessageDecoder{NS: nsComponent}
			elem := []byte(tc.msg)
			b.ReportAllocs()
			b.SetBytes(int64(len(elem)))
			for b.Loop() {
				ev, err := d.Decode(elem)
				if err != nil || ev.Kind != "message" {
					b.Fatal(err, ev.Kind)
				}
			}
		})
	}
}
