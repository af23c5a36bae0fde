package xmlstrict

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

const stream = "jabber:component:accept"

// goAccepts reports whether encoding/xml (strict mode, namespace-aware
// Token) reads s to the end without an error.
func goAccepts(s string) bool {
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// TestRejectsWhatGoAccepts: each document is read by encoding/xml without
// complaint but would be refused by expat or by an XMPP server (restricted
// XML), or would be read by them with another meaning.
func TestRejectsWhatGoAccepts(t *testing.T) {
	tests := []string{
		// stray colons
		0: `<message><x:/></message>`,
		1: `<message><:x/></message>`,
		2: `<message><x y:='1'/></message>`,
		3: `<message :from='a@b'/>`,
		4: `<message><x xmlns:p='urn:a' p:a='1' xmlns:q='urn:b' q:a='2'><y xmlns:q='urn:a' q:z='1' p:z='2'/></x></message>`,
		5: `<message><x xmlns:='urn:a'/></message>`,
		6: `<message><x xmlns:a='urn:a' a:='1'/></message>`,
		// two prefixes, one namespace: one expanded attribute name twice
		7: `<message><x xmlns:p='urn:a' xmlns:q='urn:a' p:z='1' q:z='2'/></message>`,
		// reserved namespaces and prefixes
		8:  `<message><x xmlns='http://www.w3.org/XML/1998/namespace'/></message>`,
		9:  `<message><x xmlns='http://www.w3.org/2000/xmlns/'/></message>`,
		10: `<message><p:x xmlns:p='http://www.w3.org/XML/1998/namespace'/></message>`,
		11: `<message><p:x xmlns:p='http://www.w3.org/2000/xmlns/'/></message>`,
		12: `<message><x xmlns:xml='urn:other'/></message>`,
		13: `<message><x xmlns:xmlns='urn:other'/></message>`,
		14: `<message><xmlns:x/></message>`,
		15: `<message><x xmlns:p='http://www.w3.org/XML/1998/namespace' p:lang='en' xml:lang='de'/></message>`,
		// unbound prefixes and un-declarations
		16: `<message><p:x/></message>`,
		17: `<message><x p:y='1'/></message>`,
		18: `<message><x xmlns:p=''/></message>`,
		19: `<message xmlns:p='urn:a'><p:x xmlns:p=''><p:y/></p:x></message>`,
		// prefixes are not inherited from the stream
		20: `<message><stream:error/></message>`,
		// syntax expat refuses
		21: `<message a='1'b='2'/>`,
		22: `<message xmlns:p='urn:a' xmlns:q='urn:a'><x p:y='1' q:y='1'/></message>`,
		23: `<message><x y='a' y='b'/></message>`,
		// restricted XML
		24: `<!-- c --><message/>`,
		25: `<message><!-- c --></message>`,
		26: `<?xml version='1.0'?><message/>`,
		27: `<message><?pi x?></message>`,
		28: `<!DOCTYPE message><message/>`,
		29: `<message><![CDATA[x]]></message>`,
		// not exactly one element
		30: `<message/><message/>`,
		31: ` <message/>`,
		32: `<message/>` + "\n",
		33: "\uFEFF<message/>",
		// names outside ASCII (parsers disagree on them)
		34: `<message><x-é/></message>`,
		35: `<message><x ÿ='1'/></message>`,
		// a name char that is not a NameStartChar after the colon
		36: `<message xmlns:a='urn:a'><a:1x/></message>`,
		37: `<message xmlns:a='urn:a'><a:-x/></message>`,
	}
	for i, s := range tests {
		if !goAccepts(s) {
			t.Errorf("%d: encoding/xml refuses %q: move it to TestRejects", i, s)
		}
		if _, err := Check([]byte(s), Options{StreamNS: stream}); err == nil {
			t.Errorf("%d: accepted %q", i, s)
		} else {
			t.Logf("%d: %v", i, err)
		}
	}
}

// TestRejects: documents both refuse.
func TestRejects(t *testing.T) {
	tests := []string{
		0:  ``,
		1:  `message`,
		2:  `<message>`,
		3:  `<message></messag>`,
		4:  `<message>&foo;</message>`,
		5:  `<message>&#0;</message>`,
		6:  `<message>&#xFFFE;</message>`,
		7:  `<message>&#xD800;</message>`,
		8:  `<message>&#x110000;</message>`,
		9:  `<message>&#;</message>`,
		10: `<message>&#x;</message>`,
		11: `<message>& amp;</message>`,
		12: "<message>\x01</message>",
		13: "<message>\xff</message>",
		14: "<message>\uFFFF</message>",
		15: `<message a='<'/>`,
		16: `<message a=1/>`,
		17: `<message a/>`,
		18: `<message a='1/>`,
		19: `</message>`,
		20: `<1x/>`,
		21: `<message>a<b</message>`,
		22: `<message a='&#1;'/>`,
		23: `<message>&ampx;</message>`,
		24: `<message a="'"' b='1'/>`,
		25: `<message>]]></message>`,
		26: `<message><a:b:c xmlns:a='urn:a'/></message>`,
		27: `<message><x a:b:c='1' xmlns:a='urn:a'/></message>`,
	}
	for i, s := range tests {
		if _, err := Check([]byte(s), Options{StreamNS: stream}); err == nil {
			t.Errorf("%d: accepted %q", i, s)
		}
	}
}

func TestAccepts(t *testing.T) {
	tests := []struct {
		doc          string
		space, local string
		attrs        map[string]string
	}{
		0: {`<message/>`, stream, "message", nil},
		1: {`<message from='a@b' to="c@d" id='&lt;&amp;&gt;&quot;&apos;&#x9;&#10;'><body>a &amp; b ]] &gt; é 😀 &#x1F600;</body></message>`, stream, "message",
			map[string]string{"from": "a@b", "to": "c@d", "id": "<&>\"'\t\n"}},
		2: {`<message xmlns:p='urn:a' p:x='1' x='2' xml:lang='en'><p:y xmlns:q='urn:b' q:z='1' p:z='2'/><y xmlns='urn:c'><z/></y></message>`, stream, "message",
			map[string]string{"x": "2"}},
		3: {`<m:message xmlns:m='jabber:client'/>`, "jabber:client", "message", nil},
		4: {"<message id='a\tb\nc\r'\n\t/>", stream, "message", map[string]string{"id": "a b c "}},
		5: {`<message xmlns=''><x xmlns:xml='http://www.w3.org/XML/1998/namespace'/></message>`, "", "message", nil},
		6: {`<message><p:x xmlns:p='urn:a'></p:x ></message >`, stream, "message", nil},
		7: {`<message xmlns:p='urn:a' xmlns:q='urn:b' p:z='1' q:z='2'/>`, stream, "message", nil},
	}
	for i, tc := range tests {
		r, err := Check([]byte(tc.doc), Options{StreamNS: stream})
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if r.Space != tc.space || r.Local != tc.local {
			t.Errorf("%d: root {%s}%s", i, r.Space, r.Local)
		}
		for k, v := range tc.attrs {
			if got, _ := r.Attr(k); got != v {
				t.Errorf("%d: %s=%q, want %q", i, k, got, v)
			}
		}
	}
}

func TestMaxBytes(t *testing.T) {
	doc := []byte(`<message><body>` + strings.Repeat("x", 100) + `</body></message>`)
	if _, err := Check(doc, Options{MaxBytes: len(doc)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(doc, Options{MaxBytes: len(doc) - 1}); err == nil {
		t.Fatal("over MaxBytes accepted")
	}
}

func TestCanon(t *testing.T) {
	same := [][2]string{
		{"<m xmlns:p='urn:a' p:x='1' y='2'><p:c>a\r\nb\rc&#xD;</p:c></m>", "<m y=\"2\" xmlns:q='urn:a' q:x='1'><c xmlns='urn:a'>a\nb\nc&#13;</c></m>"},
		{"<m a='x\r\ny\tz'/>", "<m a='x y z'></m>"},
		{"<m>a&amp;b<x/>c</m>", "<m>a&#38;b<x></x>c</m>"},
	}
	for i, p := range same {
		a, err1 := Canon([]byte(p[0]), Options{StreamNS: stream})
		b, err2 := Canon([]byte(p[1]), Options{StreamNS: stream})
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("%d: %v %v\n%s\n%s", i, err1, err2, a, b)
		}
	}
	diff := [][2]string{
		{"<m><c/></m>", "<m><c xmlns='urn:a'/></m>"},
		{"<m a='1'/>", "<m xmlns:p='urn:a' p:a='1'/>"},
		{"<m>a&#xD;</m>", "<m>a&#xA;</m>"},
		{"<m a='&#xA;'/>", "<m a='\n'/>"},
	}
	for i, p := range diff {
		a, err1 := Canon([]byte(p[0]), Options{StreamNS: stream})
		b, err2 := Canon([]byte(p[1]), Options{StreamNS: stream})
		if err1 != nil || err2 != nil || a == b {
			t.Errorf("%d: %v %v same canon\n%s", i, err1, err2, a)
		}
	}
}
