package component

import (
	"context"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"xmppgw/stanza"
)

// The component read loop against hostile and unusual input. Each case
// runs through our read loop and through mellium's Serve (the loop it
// replaces, kept for client mode): what reaches the Inbound, what the
// session writes back and how the session ends must be the same, except
// where a case says otherwise.

// loops are the two read loops of a component session.
var loops = []struct {
	name     string
	mellium  bool
	ownLimit bool // our loop alone bounds an element's size
}{
	{"mellium", true, false},
	{"own", false, true},
}

// outcome is what a script did to a session.
type outcome struct {
	msgs  []stanza.Event
	pres  []stanza.Presence
	wrote string // everything the session wrote after the handshake
	ended bool
	err   error
	cond  string // StreamErrorCondition
}

// rawServer is the server side of a negotiated session whose output is
// recorded raw.
type rawServer struct {
	t     *testing.T
	s     *Session
	rec   *recorder
	conn  net.Conn
	out   *lockedBuffer
	wrote chan struct{} // closed when the session's output ended
}

// rawSession negotiates a component session over net.Pipe whose server
// answers the handshake with answer ("" for <handshake/>) in one write,
// then records everything the session writes.
func rawSession(t *testing.T, mellium bool, answer string) *rawServer {
	t.Helper()
	cfg := testConfig(t)
	cfg.melliumServe = mellium
	rec := newRecorder()
	c, srv := net.Pipe()
	f := newFakeServer(t, srv)
	hsDone := make(chan struct{})
	go func() {
		defer close(hsDone)
		f.handshake(answer)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := open(ctx, cfg, rec, c)
	<-hsDone
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	r := &rawServer{t: t, s: s, rec: rec, conn: srv, out: &lockedBuffer{on: true}, wrote: make(chan struct{})}
	go func() {
		defer close(r.wrote)
		_, _ = io.Copy(r.out, srv)
	}()
	t.Cleanup(func() {
		s.kill(nil)
		<-s.Done()
		_ = srv.Close()
		<-r.wrote
	})
	return r
}

// send writes p as one write; a session that has ended makes it fail,
// which is not an error here.
func (r *rawServer) send(p string) { _, _ = io.WriteString(r.conn, p) }

// sync waits until the session has handled everything sent before: it
// answers a ping sent after it.
func (r *rawServer) sync(id string) {
	r.t.Helper()
	r.send(`<iq type='get' id='` + id + `' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`)
	waitFor(r.t, "the answer to "+id, func() bool {
		return strings.Contains(r.out.String(), `id="`+id+`"`)
	})
}

// end waits for the session to end, then for its output.
func (r *rawServer) end() {
	r.t.Helper()
	select {
	case <-r.s.Done():
	case <-time.After(5 * time.Second):
		r.t.Fatal("the session did not end")
	}
	_ = r.conn.Close()
	<-r.wrote
}

func (r *rawServer) outcome() outcome {
	o := outcome{wrote: r.out.String(), err: r.s.Err(), cond: r.s.StreamErrorCondition()}
	select {
	case <-r.s.Done():
		o.ended = true
	default:
	}
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	for _, ev := range r.rec.msgs {
		ev.ReceivedAt = time.Time{}
		if strings.HasPrefix(ev.ID, r.s.evPrefix) {
			ev.ID = "generated"
		}
		o.msgs = append(o.msgs, ev)
	}
	o.pres = append(o.pres, r.rec.pres...)
	return o
}

// hostileCases: send is written piece by piece; a session that survives
// is synced and checked alive, one that must end is waited for.
var hostileCases = []struct {
	name    string
	send    []string
	close   bool   // the server closes the connection after sending
	ends    string // the session must end with an error mentioning this ("" = it survives)
	cond    string // and this stream error condition
	msgs    int    // message events expected
	replies int    // stanza errors written back
}{
	{name: "gt in attribute values", send: []string{`<message from='alice@example.org/a>b' to='n@gw.example.org' id='x>y' type='chat'><body a='>' b="'>'">1 &gt; 0</body></message><iq type='get' id='q>1' from='example.org/>' to='gw.example.org'><ping xmlns='urn:xmpp:ping' x='/>'/></iq>`}, msgs: 1},
	{name: "unterminated element then EOF", send: []string{`<message from='a@example.org'><body>x`}, close: true, ends: "stream"},
	{name: "EOF between stanzas", send: []string{`<message from='a@example.org'><body>x</body></message>`}, close: true, ends: "stream", msgs: 1},
	{name: "comment between stanzas", send: []string{`<!-- hi -->`}, ends: "stream"},
	{name: "comment in a message", send: []string{`<message from='a@example.org'><!-- hi --><body>x</body></message>`}, ends: "stream"},
	{name: "processing instruction", send: []string{`<?xml version='1.0'?>`}, ends: "stream"},
	{name: "processing instruction in a message", send: []string{`<message from='a@example.org'><?pi x?><body>x</body></message>`}, ends: "stream"},
	{name: "DOCTYPE", send: []string{`<!DOCTYPE message [<!ENTITY x 'y'>]>`}, ends: "stream"},
	{name: "entity declaration in a message", send: []string{`<message from='a@example.org'><!ENTITY x 'y'><body>&x;</body></message>`}, ends: "stream"},
	{name: "undeclared entity", send: []string{`<message from='a@example.org'><body>&x;</body></message>`}, ends: "stream"},
	{name: "stream error", send: []string{`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error></stream:stream>`}, ends: "conflict", cond: "conflict"},
	{name: "stream error in a message", send: []string{`<message from='a@example.org'><stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></message>`}, ends: "system-shutdown", cond: "system-shutdown"},
	{name: "stream end mid-flow", send: []string{`<message from='a@example.org' id='1'><body>one</body></message></stream:stream><message from='a@example.org' id='2'><body>two</body></message>`}, ends: "ended the stream", msgs: 1},
	{name: "stream end inside a message", send: []string{`<message from='a@example.org'><body>x</stream:stream>`}, ends: "stream"},
	{name: "stray end tag", send: []string{`</message>`}, ends: "stream"},
	{name: "text between stanzas", send: []string{`hello<presence/>`}, ends: "stream"},
	{name: "stream features after negotiation", send: []string{`<stream:features/>`}, ends: "stream"},
	{name: "stream restart", send: []string{`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>`}, ends: "stream"},
	{name: "invalid UTF-8", send: []string{"<message from='a@example.org'><body>\xff</body></message>"}, ends: "stream"},
	{name: "control character", send: []string{"<message from='a@example.org'><body>\x01</body></message>"}, ends: "stream"},
	{name: "mismatched end tag", send: []string{`<message from='a@example.org'><body>x</thread></message>`}, ends: "stream"},
	{name: "whitespace keepalives", send: []string{" ", "\n", `<message from='a@example.org'><body>x</body></message>`, " \t\r\n ", `<presence from='a@example.org'/>`, "  "}, msgs: 1},
	{name: "self-closing stanzas", send: []string{`<message from='a@example.org' id='s'/><presence from='a@example.org' type='unavailable'/><iq type='result' id='x' from='example.org'/>`}},
	{name: "unknown top-level element", send: []string{`<foo xmlns='urn:x'><bar a='1'/>text</foo><message from='a@example.org'><body>after</body></message>`}, msgs: 1},
	{name: "message of another namespace", send: []string{`<message xmlns='jabber:client' from='a@example.org'><body>x</body></message>`}},
	{name: "prefixed message", send: []string{`<c:message xmlns:c='jabber:component:accept' from='a@example.org' id='p'><c:body>x</c:body><body>y</body></c:message>`}, msgs: 1},
	{name: "nested to the depth limit", send: []string{`<message from='a@example.org' id='d16'><body>x</body>` + strings.Repeat("<a>", 16) + strings.Repeat("</a>", 16) + `</message>`}, msgs: 1},
	{name: "nested one level deeper", send: []string{`<message from='a@example.org' id='d17'><body>x</body>` + strings.Repeat("<a>", 17) + strings.Repeat("</a>", 17) + `</message>`}, replies: 1},
	{name: "nested 2000 levels", send: []string{`<message from='a@example.org' id='d2000'><body>x</body>` + strings.Repeat("<a xmlns='urn:deep'>", 2000) + strings.Repeat("</a>", 2000) + `</message>`}, replies: 1},
	{name: "from our own domain", send: []string{`<message from='gw.example.org' to='n@gw.example.org' id='own'><body>x</body></message><presence from='gw.example.org' to='n@gw.example.org'/><message from='gw.example.org' to='n@gw.example.org' id='big'><body>` + strings.Repeat("x", 2000) + `</body></message>`}, msgs: 1},
	{name: "from another address of ours", send: []string{`<message from='n@gw.example.org' to='m@gw.example.org' id='n'><body>x</body></message><message from='gw.example.org/r' id='r'><body>y</body></message>`}, msgs: 2},
	{name: "over the text limit", send: []string{`<message from='a@example.org' id='big'><body>` + strings.Repeat("x", 2000) + `</body></message>`}, replies: 1},
	{name: "stanza error reply", send: []string{`<message from='a@example.org' to='n@gw.example.org' id='j'><json xmlns='urn:xmpp:json:0'>{bad</json></message>`}, replies: 1},
	{name: "bounce", send: []string{`<message from='a@example.org' id='b' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`}, msgs: 1},
}

func TestReadHostileInput(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]outcome
			for k, loop := range loops {
				r := rawSession(t, loop.mellium, "")
				for _, p := range tc.send {
					r.send(p)
				}
				if tc.close {
					_ = r.conn.Close()
				}
				if tc.ends == "" {
					r.sync("sync")
				} else {
					r.end()
				}
				o := r.outcome()
				got[k] = o
				switch {
				case tc.ends == "" && o.ended:
					t.Errorf("%s: the session ended: %v", loop.name, o.err)
				case tc.ends != "" && (!o.ended || o.err == nil || !strings.Contains(o.err.Error(), tc.ends)):
					t.Errorf("%s: ended %v with %v, want an error mentioning %q", loop.name, o.ended, o.err, tc.ends)
				}
				if o.cond != tc.cond {
					t.Errorf("%s: stream error condition %q, want %q", loop.name, o.cond, tc.cond)
				}
				if len(o.msgs) != tc.msgs {
					t.Errorf("%s: %d message events, want %d: %+v", loop.name, len(o.msgs), tc.msgs, o.msgs)
				}
				if n := strings.Count(o.wrote, `type='error'`); n != tc.replies {
					t.Errorf("%s: %d stanza errors written back, want %d: %s", loop.name, n, tc.replies, o.wrote)
				}
				t.Logf("%s: err %v; wrote %.300q", loop.name, o.err, o.wrote)
			}
			m, own := got[0], got[1]
			if !reflect.DeepEqual(m.msgs, own.msgs) {
				t.Errorf("events differ:\nmellium %+v\nown     %+v", m.msgs, own.msgs)
			}
			if !reflect.DeepEqual(m.pres, own.pres) {
				t.Errorf("presences differ:\nmellium %+v\nown     %+v", m.pres, own.pres)
			}
			if m.wrote != own.wrote {
				t.Errorf("written back differs:\nmellium %q\nown     %q", m.wrote, own.wrote)
			}
		})
	}
}

// TestReadFromOurDomain: like mellium's Serve, the read loop blanks a from
// equal to our own bare address: the event has no From, and a refused
// message from it is not answered.
func TestReadFromOurDomain(t *testing.T) {
	for _, loop := range loops {
		t.Run(loop.name, func(t *testing.T) {
			r := rawSession(t, loop.mellium, "")
			r.send(`<message from='gw.example.org' to='n@gw.example.org' id='own' type='chat'><body>x</body></message>`)
			r.send(`<presence from='gw.example.org' to='n@gw.example.org'/>`)
			r.send(`<message from='gw.example.org' id='big'><body>` + strings.Repeat("x", 2000) + `</body></message>`)
			r.sync("sync")
			o := r.outcome()
			if len(o.msgs) != 1 || o.msgs[0].From != "" || o.msgs[0].ID != "own" || o.msgs[0].To != "n@gw.example.org" {
				t.Errorf("events %+v", o.msgs)
			}
			if len(o.pres) != 1 || o.pres[0].From != "" {
				t.Errorf("presences %+v", o.pres)
			}
			if strings.Contains(o.wrote, "big") {
				t.Errorf("a refused message from our own domain was answered: %s", o.wrote)
			}
		})
	}
}

// TestReadSplitAtEveryByte: a message (fast path) and an IQ (token path)
// split across two reads at every byte, with whitespace keepalives
// between stanzas, arrive whole.
func TestReadSplitAtEveryByte(t *testing.T) {
	msg := `<message from='alice@example.org/phone' to='n@gw.example.org' id='ID' type='chat' xml:lang='en'><body a='>'>a &amp; b &#x1F600; <![CDATA[<c>]]></body><request xmlns='urn:xmpp:receipts'/></message>`
	iq := `<iq type='get' id='ID' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`
	for _, loop := range loops {
		t.Run(loop.name, func(t *testing.T) {
			r := rawSession(t, loop.mellium, "")
			for k := 1; k < len(msg); k++ {
				m := strings.Replace(msg, "'ID'", fmt.Sprintf("'m%d'", k), 1)
				r.send(m[:k])
				r.send(m[k:] + " ")
			}
			for k := 1; k < len(iq); k++ {
				q := strings.Replace(iq, "'ID'", fmt.Sprintf("'q%d'", k), 1)
				r.send(q[:k])
				r.send(q[k:] + "\n")
			}
			r.sync("sync")
			o := r.outcome()
			if len(o.msgs) != len(msg)-1 {
				t.Fatalf("%d events, want %d", len(o.msgs), len(msg)-1)
			}
			for i, ev := range o.msgs {
				want := stanza.Event{Kind: "message", ID: fmt.Sprintf("m%d", i+1), From: "alice@example.org/phone", To: "n@gw.example.org",
					Type: "chat", Text: "a & b \U0001F600 <c>", WantsReceipt: true}
				if !reflect.DeepEqual(ev, want) {
					t.Fatalf("event %d:\n got %+v\nwant %+v", i, ev, want)
				}
			}
			for k := 1; k < len(iq); k++ {
				if !strings.Contains(o.wrote, fmt.Sprintf(`id="q%d"`, k)) {
					t.Fatalf("ping q%d not answered", k)
				}
			}
		})
	}
}

// TestReadStanzasWithTheHandshake: what the server sends in the same
// write as its handshake reply is not lost between mellium's negotiation
// and our read loop.
func TestReadStanzasWithTheHandshake(t *testing.T) {
	for _, loop := range loops {
		t.Run(loop.name, func(t *testing.T) {
			r := rawSession(t, loop.mellium, `<handshake/><message from='a@example.org' id='first'><body>one</body></message> <presence from='a@example.org'/><iq type='get' id='early' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`)
			r.sync("sync")
			o := r.outcome()
			if len(o.msgs) != 1 || o.msgs[0].ID != "first" || len(o.pres) != 1 || !strings.Contains(o.wrote, `id="early"`) {
				t.Fatalf("lost what came with the handshake: %+v %+v %q", o.msgs, o.pres, o.wrote)
			}
		})
	}
}

// TestReadElementOverTheCap: our loop ends the session on an element over
// MaxElementBytes (mellium's would buffer it whole and refuse it with
// policy-violation).
func TestReadElementOverTheCap(t *testing.T) {
	cfg := testConfig(t)
	max := MaxElementBytes(cfg.Limits)
	r := rawSession(t, false, "")
	go r.send(`<message from='a@example.org' id='huge'><body>` + strings.Repeat("x", max) + `</body></message>`)
	r.end()
	o := r.outcome()
	if o.err == nil || !strings.Contains(o.err.Error(), fmt.Sprint(max)) || len(o.msgs) != 0 {
		t.Fatalf("err %v, %d events", o.err, len(o.msgs))
	}
	if strings.Contains(o.wrote, "huge") {
		t.Fatalf("answered: %s", o.wrote)
	}
	// Just under the cap: refused with a stanza error, the session lives.
	r = rawSession(t, false, "")
	under := `<message from='a@example.org' id='under'><body>` + strings.Repeat("x", max-100) + `</body></message>`
	if len(under) > max {
		t.Fatal("test element over the cap")
	}
	r.send(under)
	r.sync("sync")
	if o := r.outcome(); o.ended || !strings.Contains(o.wrote, "under") {
		t.Fatalf("ended %v (%v), wrote %.200s", o.ended, o.err, o.wrote)
	}
}

// panickyPresence is an Inbound whose Presence panics.
type panickyPresence struct{ *recorder }

func (panickyPresence) Presence(*Session, *stanza.Presence) { panic("boom") }

// TestReadPanicOnTheTokenPath: a panic while handling an element replayed
// through encoding/xml ends the session, as one on the fast path does
// (TestPanicInHandlerEndsSessionNotProcess).
func TestReadPanicOnTheTokenPath(t *testing.T) {
	for _, loop := range loops {
		t.Run(loop.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.melliumServe = loop.mellium
			s, f := pipeSession(t, cfg, panickyPresence{newRecorder()})
			go func() { _, _ = io.Copy(io.Discard, f.conn) }()
			f.send(`<presence from='alice@example.org/phone'/>`)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session still up after a panic in the handler")
			}
			if err := s.Err(); err == nil || !strings.Contains(err.Error(), "panic while handling <presence/>") {
				t.Fatalf("Err = %v, want the panic", err)
			}
		})
	}
}
