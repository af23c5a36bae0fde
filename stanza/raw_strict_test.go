package stanza

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// rawItem wraps a raw stanza into an item body.
func rawItem(s string) []byte {
	b, _ := json.Marshal(map[string]string{"stanza": s})
	return b
}

// TestRawNamespaceStrict: raw stanzas that Go's encoding/xml reads but a
// namespace-aware parser (expat: Prosody, ejabberd) would reject once
// re-encoded, or would read with another meaning, are refused.
func TestRawNamespaceStrict(t *testing.T) {
	const (
		xmlURI   = "http://www.w3.org/XML/1998/namespace"
		xmlnsURI = "http://www.w3.org/2000/xmlns/"
	)
	tests := []struct {
		stanza string
		reason Reason
	}{
		// names with stray colons
		0: {`<message to='a@b'><x:/></message>`, ReasonBadStanza},
		1: {`<message to='a@b'><:x/></message>`, ReasonBadStanza},
		2: {`<message to='a@b'><x y:='1'/></message>`, ReasonBadStanza},
		3: {`<message to='a@b' :from='x@evil.org'/>`, ReasonBadStanza},
		4: {`<message to='a@b'><x :y='1'/></message>`, ReasonBadStanza},
		5: {`<message to='a@b'><a:b:c xmlns:a='urn:a'/></message>`, ReasonBadStanza},
		6: {`<message to='a@b'><x a:b:c='1' xmlns:a='urn:a'/></message>`, ReasonBadStanza},
		7: {`<message: to='a@b'/>`, ReasonBadStanza},
		8: {`<message to='a@b'><x xmlns:='urn:a'/></message>`, ReasonBadStanza},
		// two prefixes bound to one URI: one expanded name twice
		9:  {`<message to='a@b'><x xmlns:p='urn:a' xmlns:q='urn:a' p:z='1' q:z='2'/></message>`, ReasonBadStanza},
		10: {`<message to='a@b' xmlns:p='urn:a' xmlns:q='urn:a' p:z='1' q:z='2'/>`, ReasonBadStanza},
		11: {`<message to='a@b' xmlns:p='urn:a'><x xmlns:q='urn:a' p:z='1' q:z='2'/></message>`, ReasonBadStanza},
		// XML and XMLNS namespace URIs and prefixes
		12: {`<message to='a@b'><x xmlns='` + xmlURI + `'/></message>`, ReasonBadStanza},
		13: {`<message to='a@b'><x xmlns='` + xmlnsURI + `'/></message>`, ReasonBadStanza},
		14: {`<message to='a@b'><p:x xmlns:p='` + xmlURI + `'/></message>`, ReasonBadStanza},
		15: {`<message to='a@b'><p:x xmlns:p='` + xmlnsURI + `'/></message>`, ReasonBadStanza},
		16: {`<message to='a@b'><x xmlns:p='` + xmlURI + `' p:lang='en' xml:lang='de'/></message>`, ReasonBadStanza},
		17: {`<message to='a@b'><x xmlns:xml='urn:other'/></message>`, ReasonBadStanza},
		18: {`<message to='a@b'><x xmlns:xmlns='urn:other'/></message>`, ReasonBadStanza},
		19: {`<message to='a@b'><xmlns:x/></message>`, ReasonBadStanza},
		20: {`<message to='a@b'><x xmlns:xmlns='` + xmlnsURI + `'/></message>`, ReasonBadStanza},
		21: {`<message to='a@b' xmlns:p='` + xmlnsURI + `'/>`, ReasonBadStanza},
		// unbound prefixes, un-declarations
		22: {`<message to='a@b'><x p:y='1'/></message>`, ReasonBadStanza},
		23: {`<message to='a@b'><p:x/></message>`, ReasonBadStanza},
		24: {`<message to='a@b'><x xmlns:p=''/></message>`, ReasonBadStanza},
		25: {`<message to='a@b' p:y='1'/>`, ReasonBadStanza},
		// declarations repeated on one element
		26: {`<message to='a@b'><x xmlns:p='urn:a' xmlns:p='urn:b'/></message>`, ReasonBadStanza},
		27: {`<message to='a@b'><x xmlns='urn:a' xmlns='urn:b'/></message>`, ReasonBadStanza},
		28: {`<message to='a@b'><x y='1' y='2'/></message>`, ReasonBadStanza},
		// names that are not XML names, or not ASCII
		29: {`<message to='a@b'><x-é/></message>`, ReasonBadStanza},
		30: {`<message to='a@b'><x ÿ='1'/></message>`, ReasonBadStanza},
		31: {`<message to='a@b'><x·y/></message>`, ReasonBadStanza},
		// an attribute value whose whitespace an XML parser normalises
		32: {"<message to='a@b' id='a\nb'/>", ReasonBadStanza},
		33: {"<message to='a@b'><x y='a\tb'/></message>", ReasonBadStanza},
		34: {"<message to='a@b'><x y='a&#10;b'/></message>", ReasonBadStanza},
		// restricted XML: entities, DTD, PI
		35: {`<message to='a@b'><body>&secret;</body></message>`, ReasonBadStanza},
		36: {`<!DOCTYPE message><message to='a@b'/>`, ReasonBadStanza},
		37: {`<message to='a@b'><?pi x?></message>`, ReasonBadStanza},
		38: {`<message to='a@b'><body>&#0;</body></message>`, ReasonBadStanza},
		39: {`<message to='a@b'><body>&#xFFFE;</body></message>`, ReasonBadStanza},
		// the stream's own namespace as a child's prefix
		40: {`<message to='a@b'><stream:x xmlns:stream='http://etherx.jabber.org/streams'/></message>`, ReasonBadStanza},
		// too many attributes on one element
		41: {`<message to='a@b'><x` + manyAttrs(300) + `/></message>`, ReasonBadStanza},
	}
	for i, tc := range tests {
		for _, mode := range []Mode{ModeComponent, ModeClient} {
			e := newEnc(t, mode)
			dst := make([]byte, 3, 64)
			out, _, err := e.Append(dst, rawItem(tc.stanza), Meta{MessageID: "m"})
			var ie *ItemError
			if !errors.As(err, &ie) {
				t.Errorf("%d (mode %s): accepted %s\n  as %s", i, mode, tc.stanza, out[3:])
				break
			}
			if ie.Reason != tc.reason {
				t.Errorf("%d (mode %s): %v, want %s", i, mode, ie, tc.reason)
			}
			if len(out) != 3 {
				t.Errorf("%d: dst changed", i)
			}
		}
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" a")
		b.WriteString(strings.Repeat("x", i%7+1))
		b.WriteByte(byte('a' + i%26))
		b.WriteByte(byte('a' + i/26))
		b.WriteString("='1'")
	}
	return b.String()
}

// TestRawNamespaceGood: what the strict rules keep accepting.
func TestRawNamespaceGood(t *testing.T) {
	tests := []struct{ stanza, want string }{
		0: {`<message to='a@b' id='i'><x xmlns:p='urn:a' p:z='1' z='2' xml:lang='en'/></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><x xmlns:a0='urn:a' a0:z='1' z='2' xml:lang='en'/><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
		1: {`<message to='a@b' id='i'><x xmlns:p='urn:a' xmlns:q='urn:b' p:z='1' q:z='2'/></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><x xmlns:a0='urn:a' a0:z='1' xmlns:a1='urn:b' a1:z='2'/><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
		2: {`<message to='a@b' id='i'><p:x xmlns:p='urn:a' xmlns='urn:b'><y/></p:x></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><x xmlns='urn:a'><y xmlns='urn:b'/></x><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
		3: {`<message xmlns='' to='a@b' id='i'/>`, `<message from='notices@gw.example.org' to='a@b' id='i'><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
		4: {`<message to='a@b' id='i'><_x.y-z1 a_b.c-d='v'/></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><_x.y-z1 a_b.c-d='v'/><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
		5: {`<message to='a@b' id='i'><body>a&#10;b &#x1F600; &lt;&amp;&gt;&quot;&apos; ]]&gt;</body></message>`,
			"<message from='notices@gw.example.org' to='a@b' id='i'><body>a\nb 😀 &lt;&amp;&gt;\"' ]]&gt;</body><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>"},
		// the worker's own origin-id is kept, and no second one added
		6: {`<message to='a@b' id='i'><origin-id xmlns='urn:xmpp:sid:0' id='o'/><body>x</body></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><origin-id xmlns='urn:xmpp:sid:0' id='o'/><body>x</body></message>`},
		// an origin-id deeper down is not the message's
		7: {`<message to='a@b' id='i'><x xmlns='urn:x'><origin-id xmlns='urn:xmpp:sid:0' id='o'/></x></message>`,
			`<message from='notices@gw.example.org' to='a@b' id='i'><x xmlns='urn:x'><origin-id xmlns='urn:xmpp:sid:0' id='o'/></x><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`},
	}
	e := newEnc(t, ModeComponent)
	for i, tc := range tests {
		out, _, err := e.Append(nil, rawItem(tc.stanza), Meta{})
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if string(out) != tc.want {
			t.Errorf("%d:\n got %s\nwant %s", i, out, tc.want)
		}
	}
}
