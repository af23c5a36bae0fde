package stanza

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func newEnc(t testing.TB, mode Mode) *Encoder {
	t.Helper()
	o := Options{Mode: mode, Domain: "gw.example.org", DefaultFrom: "notices", DefaultType: "chat", MaxTextBytes: 64}
	if mode == ModeClient {
		o.Account = "bot@example.org/gateway"
	}
	e, err := NewEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// parsed is a stanza as encoding/xml reads it back.
type parsed struct {
	Name     string
	Attrs    map[string]string
	Body     *string
	Subject  *string
	Thread   *string
	JSON     *string
	Children int
	Last     string            // namespace and name of the last child
	ChildIDs map[string]string // the id attribute of each child that has one, by namespace and name
}

// parseOne parses out as exactly one element and returns its parts.
func parseOne(t testing.TB, out []byte) parsed {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(out))
	var p parsed
	depth, roots := 0, 0
	var cur *string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("output not well-formed: %v\n%s", err, out)
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				roots++
				p.Name = tt.Name.Space + " " + tt.Name.Local
				p.Attrs = map[string]string{}
				for _, a := range tt.Attr {
					p.Attrs[a.Name.Local] = a.Value
				}
			}
			if depth == 2 {
				p.Children++
				p.Last = tt.Name.Space + " " + tt.Name.Local
				for _, a := range tt.Attr {
					if a.Name.Space == "" && a.Name.Local == "id" {
						if p.ChildIDs == nil {
							p.ChildIDs = map[string]string{}
						}
						p.ChildIDs[p.Last] = a.Value
					}
				}
				s := new(string)
				cur = s
				switch tt.Name.Space + " " + tt.Name.Local {
				case " body":
					p.Body = s
				case " subject":
					p.Subject = s
				case " thread":
					p.Thread = s
				case nsJSON + " json":
					p.JSON = s
				}
			}
		case xml.EndElement:
			depth--
			cur = nil
		case xml.CharData:
			if depth == 0 {
				t.Fatalf("text outside the element: %q", out)
			}
			if cur != nil && depth == 2 {
				*cur += string(tt)
			}
		default:
			t.Fatalf("unexpected token %T in %s", tok, out)
		}
	}
	if roots != 1 {
		t.Fatalf("%d elements in %s", roots, out)
	}
	return p
}

func sp(s string) *string { return &s }

func TestAppendGood(t *testing.T) {
	long := strings.Repeat("é", 32) // 64 bytes: exactly the limit
	tests := []struct {
		body    string
		mode    Mode
		want    string // exact output; "" = skip
		text    *string
		payload *string
		attrs   map[string]string
	}{
		0: {body: `{"target":"alice@example.org","text":"hi","id":"a1"}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='a1'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='a1'/></message>`},
		1: {body: `{"target":"alice@example.org","text":"<&>'\"","id":"a1"}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='a1'><body>&lt;&amp;&gt;'"</body><origin-id xmlns='urn:xmpp:sid:0' id='a1'/></message>`},
		2: {body: `{"target":"alice@example.org","text":"a\r\nb\tc","id":"x<'\"&>"}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='x&lt;&apos;&quot;&amp;&gt;'><body>a&#xD;
b	c</body><origin-id xmlns='urn:xmpp:sid:0' id='x&lt;&apos;&quot;&amp;&gt;'/></message>`, text: sp("a\r\nb\tc")},
		3: {body: `{"target":"alice@example.org","text":"😀 \ud83d\ude00","id":"e"}`, text: sp("😀 😀")},
		4: {body: `{"target":"alice@example.org","text":"שלום עולם مرحبا","id":"r"}`, text: sp("שלום עולם مرحبا")},
		5: {body: `{"target":"alice@example.org","text":"` + long + `","id":"l"}`, text: sp(long)},
		6: {body: `{"target":"alice@example.org","payload":{"k":[1,"<a&b>"]},"id":"p"}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='p'><json xmlns='urn:xmpp:json:0'>{"k":[1,"&lt;a&amp;b&gt;"]}</json><origin-id xmlns='urn:xmpp:sid:0' id='p'/></message>`},
		7: {body: `{"target":"alice@example.org","subject":"s","thread":"t1","type":"headline","from":"alerts","id":"s"}`,
			want: `<message from='alerts@gw.example.org' to='alice@example.org' type='headline' id='s'><subject>s</subject><thread>t1</thread><origin-id xmlns='urn:xmpp:sid:0' id='s'/></message>`},
		8: {body: `{"target":"alice@example.org","text":"x","from":"ops@gw.example.org/r1","id":"f"}`,
			attrs: map[string]string{"from": "ops@gw.example.org/r1"}},
		9: {body: `{"target":"Alice@Example.org/Phone","text":"x","id":"c"}`,
			attrs: map[string]string{"to": "alice@example.org/Phone"}},
		10: {body: `{"kind":"presence","target":"alice@example.org","type":"subscribe","id":"ps"}`,
			want: `<presence from='notices@gw.example.org' to='alice@example.org' type='subscribe' id='ps'/>`},
		11: {body: `{"kind":"presence","target":"alice@example.org","status":"on <duty>","show":"away","id":"pa"}`,
			want: `<presence from='notices@gw.example.org' to='alice@example.org' id='pa'><show>away</show><status>on &lt;duty&gt;</status></presence>`},
		12: {body: `{"target":"alice@example.org","text":"hi","id":"k","unknown":{"a":[1,2]},"Text":"ignored"}`, text: sp("hi")},
		13: {body: `{"target":"alice@example.org","text":"x","from":"bot@example.org","id":"cl"}`, mode: ModeClient,
			want: `<message from='bot@example.org' to='alice@example.org' type='chat' id='cl'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='cl'/></message>`},
		14: {body: `{"target":"alice@example.org","text":"x","id":"cl"}`, mode: ModeClient,
			want: `<message to='alice@example.org' type='chat' id='cl'><body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='cl'/></message>`},
		15: {body: `{"target":"alice@example.org","text":"","payload":null,"subject":null,"id":"n"}`, text: sp("")},
		16: {body: `{"target":"alice@example.org","text":"x","from":"gw.example.org","id":"d"}`, attrs: map[string]string{"from": "gw.example.org"}},
		17: {body: `{"stanza":"<message to='alice@example.org' type='chat' id='r1'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' id='r1' type='chat'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='r1'/></message>`},
		18: {body: `{"stanza":"<message xmlns='jabber:client' from='x@gw.example.org' to='a@example.org' id='r2'><json xmlns='urn:xmpp:json:0'>{\"a\":1}</json></message>","enqueued_at":"2026-11-22T10:00:00Z"}`,
			want: `<message from='x@gw.example.org' to='a@example.org' id='r2'><json xmlns='urn:xmpp:json:0'>{"a":1}</json><origin-id xmlns='urn:xmpp:sid:0' id='r2'/></message>`},
		19: {body: `{"stanza":"<presence to='a@example.org' type='unavailable' id='r3'><status>bye</status></presence>"}`,
			want: `<presence from='notices@gw.example.org' to='a@example.org' id='r3' type='unavailable'><status>bye</status></presence>`},
		20: {body: `{"stanza":"<m:message xmlns:m='jabber:component:accept' xmlns:x='urn:x' to='a@example.org' id='r4' x:attr='v'><x:foo xml:lang='en'>t</x:foo><!-- c --></m:message>"}`,
			want: `<message from='notices@gw.example.org' to='a@example.org' id='r4' xmlns:a0='urn:x' a0:attr='v'><foo xmlns='urn:x' xml:lang='en'>t</foo><origin-id xmlns='urn:xmpp:sid:0' id='r4'/></message>`},
		21: {body: ` {"target":"alice@example.org","text":"\u00e9\/","id":"w"} `, text: sp("é/")},
		22: {body: `{"target":"alice@example.org","text":"x","id":"rc","receipt":true}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='rc'><body>x</body><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='rc'/></message>`},
		23: {body: `{"target":"room@conference.example.org","type":"groupchat","text":"x","id":"rg","receipt":true}`,
			want: `<message from='notices@gw.example.org' to='room@conference.example.org' type='groupchat' id='rg'><body>x</body><markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='rg'/></message>`},
		24: {body: `{"target":"alice@example.org","text":"resolved","id":"c2","replace":"c1&'","receipt":false}`,
			want: `<message from='notices@gw.example.org' to='alice@example.org' type='chat' id='c2'><body>resolved</body><replace xmlns='urn:xmpp:message-correct:0' id='c1&amp;&apos;'/><origin-id xmlns='urn:xmpp:sid:0' id='c2'/></message>`},
		25: {body: `{"target":"alice@example.org","text":"x","receipt":null,"replace":null,"id":"nn"}`, text: sp("x")},
	}
	for i, tc := range tests {
		e := newEnc(t, tc.mode)
		prefix := []byte("PREFIX")
		out, info, err := e.Append(prefix, []byte(tc.body), Meta{})
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		if !bytes.HasPrefix(out, []byte("PREFIX")) {
			t.Errorf("%d: prefix clobbered", i)
		}
		out = out[len("PREFIX"):]
		if tc.want != "" && string(out) != tc.want {
			t.Errorf("%d:\n got %s\nwant %s", i, out, tc.want)
		}
		if err := strictCheck(e, out); err != nil {
			t.Errorf("%d: oracle: %v\n%s", i, err, out)
		}
		p := parseOne(t, out)
		if p.Attrs["id"] != info.ID {
			t.Errorf("%d: id attr %q, info %q", i, p.Attrs["id"], info.ID)
		}
		if tc.text != nil && (p.Body == nil || *p.Body != *tc.text) {
			t.Errorf("%d: body %v, want %q", i, p.Body, *tc.text)
		}
		for k, v := range tc.attrs {
			if p.Attrs[k] != v {
				t.Errorf("%d: attr %s=%q, want %q", i, k, p.Attrs[k], v)
			}
		}
		wantReceipt := strings.Contains(tc.body, `"receipt":true`)
		if info.Receipt != wantReceipt || (wantReceipt && info.To != p.Attrs["to"]) {
			t.Errorf("%d: info Receipt %v To %q, want %v %q", i, info.Receipt, info.To, wantReceipt, p.Attrs["to"])
		}
	}
}

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		body   string
		mode   Mode
		reason Reason
	}{
		0:  {`not json`, ModeComponent, ReasonInvalidJSON},
		1:  {`{"target":"a@b","text":"x"`, ModeComponent, ReasonInvalidJSON},
		2:  {`{"target":"a@b","text":"x"} {}`, ModeComponent, ReasonInvalidJSON},
		3:  {`["target"]`, ModeComponent, ReasonInvalidJSON},
		4:  {"{\"target\":\"a@b\",\"text\":\"\xff\"}", ModeComponent, ReasonInvalidUTF8},
		5:  {`{"target":"a@b","text":"\u0000"}`, ModeComponent, ReasonInvalidChar},
		6:  {`{"target":"a@b","text":"\ud800"}`, ModeComponent, ReasonInvalidChar},
		7:  {`{"target":"a@b","text":"\ud800\u0041"}`, ModeComponent, ReasonInvalidChar},
		8:  {`{"target":"a@b","text":"\uffff"}`, ModeComponent, ReasonInvalidChar},
		9:  {"{\"target\":\"a@b\",\"text\":\"\uFFFE\"}", ModeComponent, ReasonInvalidChar},
		10: {`{"target":"a@b","text":"a\bc"}`, ModeComponent, ReasonInvalidChar},
		11: {`{"text":"x"}`, ModeComponent, ReasonMissingField},
		12: {`{"target":"a@b"}`, ModeComponent, ReasonMissingField},
		13: {`{"target":"a@b","text":"x","type":"chatty"}`, ModeComponent, ReasonBadField},
		14: {`{"target":"a@b","text":1}`, ModeComponent, ReasonBadField},
		15: {`{"target":"a@b","text":"x","kind":"iq"}`, ModeComponent, ReasonBadField},
		16: {`{"target":"a@b","text":"x","enqueued_at":"yesterday"}`, ModeComponent, ReasonBadField},
		17: {`{"target":"a@b","text":"x","stanza":"<message/>"}`, ModeComponent, ReasonBadField},
		18: {`{"target":"@b","text":"x"}`, ModeComponent, ReasonBadJID},
		19: {`{"target":"a@b/","text":"x"}`, ModeComponent, ReasonBadJID},
		20: {`{"target":"a<b@c","text":"x"}`, ModeComponent, ReasonBadJID},
		21: {`{"target":"a@b","text":"` + strings.Repeat("x", 65) + `"}`, ModeComponent, ReasonTooLong},
		22: {`{"target":"a@b","text":"` + strings.Repeat("é", 32) + `x"}`, ModeComponent, ReasonTooLong},
		23: {`{"target":"a@b","text":"x","from":"a@other.org"}`, ModeComponent, ReasonForbiddenFrom},
		24: {`{"target":"a@b","text":"x","from":"a b"}`, ModeComponent, ReasonBadJID},
		25: {`{"target":"a@b","text":"x","from":"x@evil.org/gw.example.org"}`, ModeComponent, ReasonForbiddenFrom},
		26: {`{"target":"a@b","text":"x","from":"other@example.org"}`, ModeClient, ReasonForbiddenFrom},
		27: {`{"target":"a@b","text":"x","from":"bot@example.org/other"}`, ModeClient, ReasonForbiddenFrom},
		28: {`{"stanza":"<iq type='get' to='a@b'/>"}`, ModeComponent, ReasonBadStanza},
		29: {`{"stanza":"<message to='a@b'/><message to='a@b'/>"}`, ModeComponent, ReasonBadStanza},
		30: {`{"stanza":"<message to='a@b'/>trailing"}`, ModeComponent, ReasonBadStanza},
		31: {`{"stanza":"<message to='a@b'></stream:stream><stream:stream>"}`, ModeComponent, ReasonBadStanza},
		32: {`{"stanza":"<message to='a@b' from='x@evil.org'/>"}`, ModeComponent, ReasonForbiddenFrom},
		33: {`{"stanza":"<message xmlns='urn:other' to='a@b'/>"}`, ModeComponent, ReasonBadStanza},
		34: {`{"stanza":"<message to='a@b'><s:x xmlns:s='http://etherx.jabber.org/streams'/></message>"}`, ModeComponent, ReasonBadStanza},
		35: {`{"stanza":"<message to='a@b'><y:x/></message>"}`, ModeComponent, ReasonBadStanza},
		36: {`{"stanza":"<message to='a@b'>"}`, ModeComponent, ReasonBadStanza},
		37: {`{"stanza":"<?xml version='1.0'?><message to='a@b'/>"}`, ModeComponent, ReasonBadStanza},
		38: {`{"stanza":"<!DOCTYPE x [<!ENTITY a 'b'>]><message to='a@b'/>"}`, ModeComponent, ReasonBadStanza},
		39: {`{"stanza":"<message to='a@b' to='c@d'/>"}`, ModeComponent, ReasonBadStanza},
		40: {`{"stanza":"<message to='a@b' type='bogus'/>"}`, ModeComponent, ReasonBadStanza},
		41: {`{"stanza":"<message to='@b'/>"}`, ModeComponent, ReasonBadJID},
		42: {`{"stanza":"<message to='a@b'><body>` + strings.Repeat("x", 65) + `</body></message>"}`, ModeComponent, ReasonTooLong},
		43: {`{"stanza":"<message to='a@b'>&#1;</message>"}`, ModeComponent, ReasonBadStanza},
		44: {`{"stanza":""}`, ModeComponent, ReasonBadStanza},
		45: {`{"target":"a@b","text":"x","id":"` + strings.Repeat("i", 1024) + `"}`, ModeComponent, ReasonBadField},
		46: {`{"kind":"presence","target":"a@b","type":"probe"}`, ModeComponent, ReasonBadField},
		47: {`{"kind":"presence","type":"subscribe"}`, ModeClient, ReasonMissingField},
		48: {`{"kind":"presence","target":"a@b","text":"x"}`, ModeComponent, ReasonBadField},
		49: {`{"target":"a@b","status":"x","text":"x"}`, ModeComponent, ReasonBadField},
		50: {`{"target":"a@b","text":"x","from":"Bad<Local"}`, ModeComponent, ReasonBadJID},
		51: {``, ModeComponent, ReasonInvalidJSON},
		52: {"{\"target\":\"a@b\",\"payload\":{\"a\":\"\uFFFF\"}}", ModeComponent, ReasonInvalidChar},
		// A member of ours twice: parsers disagree on which one counts.
		53: {`{"target":"a@b","text":"one","text":"two"}`, ModeComponent, ReasonBadField},
		54: {`{"target":"a@b","text":"x","target":"c@d"}`, ModeComponent, ReasonBadField},
		55: {`{"target":"a@b","payload":1,"payload":2}`, ModeComponent, ReasonBadField},
		56: {`{"target":"a@b","text":"x","t\u0065xt":"y"}`, ModeComponent, ReasonBadField},
		57: {`{"target":"a@b","text":null,"text":"x"}`, ModeComponent, ReasonBadField},
		58: {`{"target":"a@b","text":"x","receipt":"yes"}`, ModeComponent, ReasonBadField},
		59: {`{"target":"a@b","text":"x","receipt":1}`, ModeComponent, ReasonBadField},
		60: {`{"target":"a@b","text":"x","receipt":true,"receipt":true}`, ModeComponent, ReasonBadField},
		61: {`{"target":"a@b","text":"x","replace":""}`, ModeComponent, ReasonBadField},
		62: {`{"target":"a@b","text":"x","replace":"same","id":"same"}`, ModeComponent, ReasonBadField},
		63: {`{"target":"a@b","text":"x","replace":"` + strings.Repeat("r", 1024) + `"}`, ModeComponent, ReasonBadField},
		64: {`{"target":"a@b","text":"x","replace":7}`, ModeComponent, ReasonBadField},
		65: {`{"stanza":"<message to='a@b'/>","receipt":true}`, ModeComponent, ReasonBadField},
		66: {`{"stanza":"<message to='a@b'/>","replace":"x"}`, ModeComponent, ReasonBadField},
		67: {`{"kind":"presence","target":"a@b","receipt":true}`, ModeComponent, ReasonBadField},
		68: {`{"kind":"presence","target":"a@b","replace":"x"}`, ModeComponent, ReasonBadField},
		69: {`{"target":"a@b","text":"x","replace":"a\u0001"}`, ModeComponent, ReasonInvalidChar},
	}
	for i, tc := range tests {
		e := newEnc(t, tc.mode)
		dst := make([]byte, 3, 64)
		out, info, err := e.Append(dst, []byte(tc.body), Meta{})
		var ie *ItemError
		if !errors.As(err, &ie) {
			t.Errorf("%d: err %v (%T), want %s; out %s", i, err, err, tc.reason, out)
			continue
		}
		if ie.Reason != tc.reason {
			t.Errorf("%d: reason %s (%v), want %s", i, ie.Reason, ie, tc.reason)
		}
		if len(out) != 3 || info != (Info{}) {
			t.Errorf("%d: dst changed to %d bytes", i, len(out))
		}
		if !strings.HasPrefix(ie.Error(), string(tc.reason)+": ") || len(ie.Detail) > 200 {
			t.Errorf("%d: Error() = %q", i, ie.Error())
		}
	}
}

func TestAppendPayloadRaw(t *testing.T) {
	// The raw payload bytes go out as character data, escaped; \r between tokens too.
	e := newEnc(t, ModeComponent)
	out, _, err := e.Append(nil, []byte("{\"target\":\"a@b\",\"payload\":[1,\r\n\"\\u0000 <x>\"]}"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	p := parseOne(t, out)
	if p.JSON == nil || *p.JSON != "[1,\r\n\"\\u0000 <x>\"]" {
		t.Fatalf("payload %q", *p.JSON)
	}
	if !json.Valid([]byte(*p.JSON)) {
		t.Fatal("payload not JSON")
	}
}

func TestAppendTenKB(t *testing.T) {
	e, err := NewEncoder(Options{Domain: "gw.example.org", DefaultFrom: "n"})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("0123456789<&>\"'\n", 640)
	body, _ := json.Marshal(map[string]any{"target": "a@example.org", "text": text, "payload": map[string]string{"t": text}})
	out, _, err := e.Append(nil, body, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	p := parseOne(t, out)
	if *p.Body != text {
		t.Fatal("text differs")
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(*p.JSON), &v); err != nil || v["t"] != text {
		t.Fatalf("payload differs: %v", err)
	}
}

func TestAppendID(t *testing.T) {
	e := newEnc(t, ModeComponent)
	body := []byte(`{"target":"a@b","text":"x"}`)
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m := Meta{CorrelationID: "c", AppID: "w", Timestamp: ts}
	_, i1, _ := e.Append(nil, body, m)
	_, i2, _ := e.Append(make([]byte, 0, 4096), body, m)
	if i1.ID != i2.ID || len(i1.ID) != 16 || strings.Trim(i1.ID, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("hash ids %q %q", i1.ID, i2.ID)
	}
	if !i1.EnqueuedAt.Equal(ts) || i1.Kind != "message" {
		t.Fatalf("info %+v", i1)
	}
	m2 := m
	m2.CorrelationID = "d"
	if _, i3, _ := e.Append(nil, body, m2); i3.ID == i1.ID {
		t.Fatal("id ignores properties")
	}
	m.MessageID = "mid"
	if _, i4, _ := e.Append(nil, body, m); i4.ID != "mid" {
		t.Fatalf("message-id not used: %q", i4.ID)
	}
	_, i5, _ := e.Append(nil, []byte(`{"target":"a@b","text":"x","id":"own","enqueued_at":"2026-11-22T11:00:00+01:00"}`), m)
	if i5.ID != "own" || !i5.EnqueuedAt.Equal(ts) {
		t.Fatalf("info %+v", i5)
	}
	m.MessageID = "bad\x00"
	if _, _, err := e.Append(nil, body, m); err == nil {
		t.Fatal("control character in message-id accepted")
	}
}

func TestNewEncoderErrors(t *testing.T) {
	bad := []Options{
		{Domain: ""},
		{Domain: "a@b"},
		{Domain: "gw.example.org", DefaultType: "error"},
		{Domain: "gw.example.org", DefaultFrom: "a@b"},
		{Mode: ModeClient, Account: "example.org"},
		{Mode: "carrier-pigeon"},
		{Domain: "gw.example.org", MaxTextBytes: -1},
	}
	for i, o := range bad {
		if _, err := NewEncoder(o); err == nil {
			t.Errorf("%d: accepted %+v", i, o)
		}
	}
}

// A library's error may quote the whole input (IDNA quotes every label):
// the detail stays short all the same. Found by FuzzAppend.
func TestAppendErrorDetailBounded(t *testing.T) {
	label := "xn--bch" + strings.Repeat("b", 1000) + "er-kva"
	for _, body := range []string{
		`{"target":"a@` + label + `","text":"x"}`,
		`{"target":"a@b","text":"x","from":"n@` + label + `"}`,
		`{"stanza":"<message to='a@` + label + `'/>"}`,
	} {
		_, _, err := newEnc(t, ModeComponent).Append(nil, []byte(body), Meta{})
		var ie *ItemError
		if !errors.As(err, &ie) {
			t.Fatalf("err %v", err)
		}
		if len(ie.Detail) > 300 {
			t.Errorf("detail of %d bytes: %.80q…", len(ie.Detail), ie.Detail)
		}
	}
}
