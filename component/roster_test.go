package component

import (
	"context"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppgw/stanza"
)

// rosterRecorder is a recorder that also takes the roster.
type rosterRecorder struct {
	*recorder
	rmu   sync.Mutex
	calls []rosterCall
}

type rosterCall struct {
	full  bool
	items []stanza.RosterItem
}

func newRosterRecorder() *rosterRecorder { return &rosterRecorder{recorder: newRecorder()} }

func (r *rosterRecorder) Roster(_ *Session, full bool, items []stanza.RosterItem) {
	r.rmu.Lock()
	r.calls = append(r.calls, rosterCall{full, items})
	r.rmu.Unlock()
	select {
	case r.got <- struct{}{}:
	default: // Inbound must not block
	}
}

func (r *rosterRecorder) rosterCalls() []rosterCall {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	return append([]rosterCall(nil), r.calls...)
}

// clientSession negotiates a client session for in with the fake server and
// returns the elements the session wrote before its initial presence.
func clientSession(t *testing.T, in Inbound) (*Session, *fakeServer, []element) {
	t.Helper()
	c, srv := net.Pipe()
	f := newFakeServer(t, srv)
	negotiated := make(chan bool, 1)
	go func() { negotiated <- f.c2sNegotiate("pw") }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type result struct {
		s   *Session
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := open(ctx, clientConfig(t), in, c)
		res <- result{s, err}
	}()
	if !<-negotiated {
		t.Fatal("negotiation failed")
	}
	var before []element
	for {
		e, ok := f.next()
		if !ok {
			t.Fatal("stream ended before the initial presence")
		}
		if e.XMLName.Local == "presence" {
			if len(e.Attrs) != 0 {
				t.Fatalf("initial presence %+v", e)
			}
			break
		}
		before = append(before, e)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		r.s.kill(nil)
		<-r.s.Done()
		_ = srv.Close()
	})
	return r.s, f, before
}

// sync sends a ping and waits for its answer: everything the fake server
// sent before it has been handled by the read loop. Elements read meanwhile
// are returned.
func (f *fakeServer) sync(id string) []element {
	f.t.Helper()
	f.send(`<iq type='get' id='` + id + `' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>`)
	var got []element
	for {
		e, ok := f.next()
		if !ok {
			f.t.Fatalf("stream ended waiting for the answer to %s", id)
		}
		if e.XMLName.Local == "iq" && e.attr("id") == id {
			return got
		}
		got = append(got, e)
	}
}

// The roster get goes out after bind, before the initial presence, with an
// id nobody else can guess; its result, from the server, is the full roster.
func TestClientRosterResult(t *testing.T) {
	rec := newRosterRecorder()
	s, f, before := clientSession(t, rec)
	if len(before) != 1 {
		t.Fatalf("before the initial presence: %+v, want one roster get", before)
	}
	get := before[0]
	id := get.attr("id")
	if get.XMLName.Local != "iq" || get.attr("type") != "get" || get.attr("to") != "" ||
		get.Inner != `<query xmlns='jabber:iq:roster'/>` {
		t.Fatalf("roster get = %+v", get)
	}
	if id != s.rosterID() || !strings.HasPrefix(id, s.idPrefix) || len(s.idPrefix) < 16 || strings.HasPrefix(id, s.evPrefix) {
		t.Fatalf("roster get id %q is not the secret one", id)
	}
	if _, isBarrier := s.barrierSeq(id); isBarrier {
		t.Fatal("the roster id parses as a barrier")
	}

	roster := `<query xmlns='jabber:iq:roster'><item jid='alice@example.org' subscription='both'/><item jid='carol@example.org' subscription='to' ask='subscribe'><group>g</group></item></query>`
	// Forgeries: our id from anyone but the account or its server.
	for _, from := range []string{"mallory@evil.example/x", "mallory@evil.example", "example.org", "bot@example.org/other", "bot@evil.example"} {
		f.send(`<iq type='result' id='` + id + `' from='` + from + `' to='bot@example.org/gw'>` + roster + `</iq>`)
	}
	f.send(`<iq type='result' id='xb-guess-roster' to='bot@example.org/gw'>` + roster + `</iq>`)
	if got := f.sync("s1"); len(got) != 0 {
		t.Errorf("answers to results: %+v", got)
	}
	if calls := rec.rosterCalls(); len(calls) != 0 {
		t.Fatalf("forged results delivered: %+v", calls)
	}
	if s.Confirmed() != 0 {
		t.Fatal("a roster result confirmed a barrier")
	}

	want := []stanza.RosterItem{{JID: "alice@example.org", Subscription: "both"}, {JID: "carol@example.org", Subscription: "to"}}
	for i, from := range []string{"", "bot@example.org", "bot@example.org/gw"} {
		attr := ""
		if from != "" {
			attr = ` from='` + from + `'`
		}
		f.send(`<iq type='result' id='` + id + `'` + attr + ` to='bot@example.org/gw'>` + roster + `</iq>`)
		f.sync("s2")
		calls := rec.rosterCalls()
		if len(calls) != i+1 || !calls[i].full || !reflect.DeepEqual(calls[i].items, want) {
			t.Fatalf("from %q: roster calls %+v", from, calls)
		}
	}
	// An empty roster is a roster; an error or a result without a query is
	// nothing known.
	f.send(`<iq type='result' id='` + id + `'><query xmlns='jabber:iq:roster'/></iq>`)
	f.send(`<iq type='result' id='` + id + `'/>`)
	f.send(`<iq type='error' id='` + id + `'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`)
	f.sync("s3")
	calls := rec.rosterCalls()
	if len(calls) != 4 || !calls[3].full || len(calls[3].items) != 0 {
		t.Fatalf("roster calls %+v", calls)
	}
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
}

// A roster push from the account is a partial update, answered with an
// empty result; a push from anyone else is not delivered and is answered
// like an IQ we do not serve.
func TestClientRosterPush(t *testing.T) {
	rec := newRosterRecorder()
	_, f, _ := clientSession(t, rec)
	item := `<query xmlns='jabber:iq:roster'><item jid='dave@example.org' subscription='remove'/></query>`
	want := []stanza.RosterItem{{JID: "dave@example.org", Subscription: "remove"}}

	for i, from := range []string{"", "bot@example.org"} {
		attr := ""
		if from != "" {
			attr = ` from='` + from + `'`
		}
		f.send(`<iq type='set' id='push` + from + `'` + attr + ` to='bot@example.org/gw'>` + item + `</iq>`)
		ans, ok := f.next()
		if !ok || ans.XMLName.Local != "iq" || ans.attr("id") != "push"+from || ans.attr("type") != "result" ||
			ans.attr("to") != "" || strings.TrimSpace(ans.Inner) != "" {
			t.Fatalf("answer to a push from %q: %+v", from, ans)
		}
		calls := rec.rosterCalls()
		if len(calls) != i+1 || calls[i].full || !reflect.DeepEqual(calls[i].items, want) {
			t.Fatalf("push from %q: roster calls %+v", from, calls)
		}
	}

	for _, from := range []string{"mallory@evil.example/x", "mallory@evil.example", "example.org", "bot@example.org/other"} {
		f.send(`<iq type='set' id='evil' from='` + from + `' to='bot@example.org/gw'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.example' subscription='both'/></query></iq>`)
		ans, ok := f.next()
		if !ok || ans.attr("id") != "evil" || ans.attr("type") != "error" || ans.attr("to") != from ||
			!strings.Contains(ans.Inner, "service-unavailable") {
			t.Fatalf("answer to a push from %s: %+v", from, ans)
		}
	}
	if calls := rec.rosterCalls(); len(calls) != 2 {
		t.Fatalf("a stranger's push was delivered: %+v", calls)
	}

	// A push over the bounds is refused, not delivered.
	f.send(`<iq type='set' id='deep'><query xmlns='jabber:iq:roster'>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `<item jid='e@example.org' subscription='both'/></query></iq>`)
	ans, ok := f.next()
	if !ok || ans.attr("id") != "deep" || ans.attr("type") != "error" || !strings.Contains(ans.Inner, "policy-violation") {
		t.Fatalf("answer to a bad push: %+v", ans)
	}
	// A roster get from anyone is not served.
	f.send(`<iq type='get' id='g' from='bot@example.org/other'><query xmlns='jabber:iq:roster'/></iq>`)
	if ans, ok := f.next(); !ok || ans.attr("id") != "g" || !strings.Contains(ans.Inner, "service-unavailable") {
		t.Fatalf("answer to a roster get: %+v", ans)
	}
	if calls := rec.rosterCalls(); len(calls) != 2 {
		t.Fatalf("roster calls %+v", calls)
	}
}

// An Inbound that takes no roster gets no roster traffic: no get, pushes
// not served. Component mode never asks.
func TestRosterOnlyForRosterInbound(t *testing.T) {
	_, f, before := clientSession(t, newRecorder())
	if len(before) != 0 {
		t.Fatalf("before the initial presence: %+v", before)
	}
	f.send(`<iq type='set' id='p'><query xmlns='jabber:iq:roster'><item jid='a@example.org'/></query></iq>`)
	if ans, ok := f.next(); !ok || ans.attr("id") != "p" || !strings.Contains(ans.Inner, "service-unavailable") {
		t.Fatalf("answer to a push: %+v", ans)
	}

	rec := newRosterRecorder()
	s, cf := pipeSession(t, testConfig(t), rec)
	if got := s.rosterGet(); got != nil {
		t.Fatalf("component mode would ask for the roster: %s", got)
	}
	cf.send(`<iq type='set' id='p' from='x@example.org/r' to='` + testDomain + `'><query xmlns='jabber:iq:roster'><item jid='a@example.org'/></query></iq>`)
	if ans, ok := cf.next(); !ok || ans.attr("id") != "p" || !strings.Contains(ans.Inner, "service-unavailable") {
		t.Fatalf("answer to a push: %+v", ans)
	}
	if calls := rec.rosterCalls(); len(calls) != 0 {
		t.Fatalf("roster calls in component mode: %+v", calls)
	}
}

// On a real Prosody: the roster arrives after connect, and a change made
// by the account itself comes back as a push (see prosody_test.go).
func TestProsodyClientRoster(t *testing.T) {
	cfg := prosodyClientConfig(t)
	rec := newRosterRecorder()
	s := dialLogged(t, cfg, rec)
	waitFor(t, "the roster", func() bool { return len(rec.rosterCalls()) == 1 })
	if c := rec.rosterCalls()[0]; !c.full {
		t.Fatalf("first roster call %+v is not full", c)
	}
	set := func(sub string) {
		t.Helper()
		attr := ""
		if sub != "" {
			attr = ` subscription='` + sub + `'`
		}
		if err := s.Write([]byte(`<iq type='set' id='rs-` + sub + `'><query xmlns='jabber:iq:roster'><item jid='rostertest@localhost'` + attr + `/></query></iq>`)); err != nil {
			t.Fatal(err)
		}
	}
	set("")
	waitFor(t, "the push", func() bool { return len(rec.rosterCalls()) == 2 })
	set("remove")
	waitFor(t, "the removal push", func() bool { return len(rec.rosterCalls()) == 3 })
	calls := rec.rosterCalls()
	want := []stanza.RosterItem{{JID: "rostertest@localhost", Subscription: "none"}}
	if calls[1].full || !reflect.DeepEqual(calls[1].items, want) {
		t.Errorf("push = %+v", calls[1])
	}
	want[0].Subscription = "remove"
	if calls[2].full || !reflect.DeepEqual(calls[2].items, want) {
		t.Errorf("removal push = %+v", calls[2])
	}
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
}
