package muc

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"xmppgw/stanza"
)

// fakeSession records what the manager writes.
type fakeSession struct {
	mu  sync.Mutex
	out []string
}

func (f *fakeSession) Write(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out = append(f.out, string(b))
	return nil
}

// take returns what was written since the last take.
func (f *fakeSession) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.out
	f.out = nil
	return out
}

type env struct {
	m   *Manager
	s   *fakeSession
	now time.Time
	met Metrics
}

func newEnv(t *testing.T, c Config) *env {
	t.Helper()
	e := &env{s: &fakeSession{}, now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	e.met = Metrics{
		Rooms:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rooms"}, []string{"state"}),
		Rejoins:   prometheus.NewCounter(prometheus.CounterOpts{Name: "rejoins"}),
		SelfPings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pings"}, []string{"result"}),
	}
	e.m = New(Options{Metrics: e.met, From: "notices@gw.example.org"})
	e.m.now = func() time.Time { return e.now }
	e.m.Configure(c)
	e.m.Online(e.s)
	return e
}

func (e *env) advance(d time.Duration) {
	e.now = e.now.Add(d)
	e.m.Tick()
}

// joinID returns the id of the one join presence in out, to to.
func joinID(t *testing.T, out []string, to string) string {
	t.Helper()
	if len(out) != 1 || !strings.Contains(out[0], "to='"+to+"'") || !strings.Contains(out[0], "<history maxchars='0'/>") {
		t.Fatalf("want one join to %s, got %q", to, out)
	}
	_, rest, _ := strings.Cut(out[0], " id='")
	id, _, _ := strings.Cut(rest, "'")
	return id
}

func self(from, typ string, codes ...int) *stanza.Presence {
	return &stanza.Presence{From: from, Type: typ, MUC: &stanza.MUCUser{Codes: append([]int{110}, codes...)}}
}

func (e *env) state(t *testing.T, jid string) State {
	t.Helper()
	ok, st, _, _ := e.m.Target(jid)
	if !ok {
		t.Fatalf("%s not configured", jid)
	}
	return st
}

const ops = "ops@conference.example.org"

func TestJoinSelfPingRejoin(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices", Password: "pw"}}, SelfPing: time.Minute})
	out := e.s.take()
	joinID(t, out, ops+"/notices")
	if !strings.Contains(out[0], "from='notices@gw.example.org'") || !strings.Contains(out[0], "<password>pw</password>") {
		t.Fatalf("join %s", out[0])
	}
	_, _, _, changed := e.m.Target(ops)
	// Another occupant's presence changes nothing, but is the manager's.
	if !e.m.Presence(&stanza.Presence{From: ops + "/bob", Type: "available", MUC: &stanza.MUCUser{Role: "participant"}}) || e.state(t, ops) != Joining {
		t.Fatal("another occupant's presence")
	}
	if e.m.Presence(&stanza.Presence{From: "alice@example.org/x", Type: "available"}) {
		t.Fatal("a contact's presence taken")
	}
	e.m.Presence(self(ops+"/notices", "available"))
	if e.state(t, ops) != Joined {
		t.Fatal("not joined after the self-presence")
	}
	select {
	case <-changed:
	default:
		t.Fatal("waiters not woken by the join")
	}
	if v := testutil.ToFloat64(e.met.Rooms.WithLabelValues("joined")); v != 1 {
		t.Fatalf("rooms{joined} = %v", v)
	}
	// The self-ping is due after a minute, to our own occupant JID.
	e.advance(59 * time.Second)
	if out := e.s.take(); len(out) != 0 {
		t.Fatalf("early: %q", out)
	}
	e.advance(time.Second)
	out = e.s.take()
	if len(out) != 1 || !strings.Contains(out[0], "to='"+ops+"/notices'") || !strings.Contains(out[0], "urn:xmpp:ping") {
		t.Fatalf("want a self-ping, got %q", out)
	}
	_, rest, _ := strings.Cut(out[0], " id='")
	pid, _, _ := strings.Cut(rest, "'")
	// An answer from someone else, or to another id, is ignored.
	e.m.IQResult(pid, "mallory@example.org", "error", "not-acceptable")
	e.m.IQResult("xgmp-zzz", ops+"/notices", "error", "not-acceptable")
	if e.state(t, ops) != Joined {
		t.Fatal("a stranger's answer rejoined")
	}
	// The occupant's client does not do pings: still joined.
	e.m.IQResult(pid, ops+"/notices", "error", "feature-not-implemented")
	if e.state(t, ops) != Joined {
		t.Fatal("feature-not-implemented taken for a lost room")
	}
	// Next ping: the room forgot us.
	e.advance(time.Minute)
	out = e.s.take()
	_, rest, _ = strings.Cut(out[0], " id='")
	pid, _, _ = strings.Cut(rest, "'")
	if !e.m.IQResult(pid, ops+"/notices", "error", "not-acceptable") || e.state(t, ops) != Joining {
		t.Fatal("not-acceptable did not rejoin")
	}
	if v := testutil.ToFloat64(e.met.Rejoins); v != 1 {
		t.Fatalf("rejoins = %v", v)
	}
	if ok, lost := testutil.ToFloat64(e.met.SelfPings.WithLabelValues("joined")), testutil.ToFloat64(e.met.SelfPings.WithLabelValues("lost")); ok != 1 || lost != 1 {
		t.Fatalf("self-pings joined %v lost %v, want 1 and 1", ok, lost)
	}
	e.advance(time.Second) // backoff
	joinID(t, e.s.take(), ops+"/notices")
	e.m.Presence(self(ops+"/notices", "available"))
	// A self-ping nobody answers rejoins too.
	e.advance(time.Minute)
	e.s.take()
	e.advance(pingTimeout + time.Second)
	if e.state(t, ops) != Joining || testutil.ToFloat64(e.met.Rejoins) != 2 {
		t.Fatal("an unanswered self-ping did not rejoin")
	}
}

func TestJoinRefusals(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}, {JID: "b@c", Nick: "n"}, {JID: "c@c", Nick: "n"}, {JID: "d@c", Nick: "n"}}})
	e.s.take()
	// A taken nick: another one at once.
	e.m.Presence(&stanza.Presence{From: ops + "/notices", Type: "error", Error: "conflict"})
	joinID(t, e.s.take(), ops+"/notices-2")
	e.m.Presence(self(ops+"/notices-2", "available"))
	if e.state(t, ops) != Joined || e.m.Rooms()[3].Nick != "notices-2" {
		t.Fatalf("after a conflict: %+v", e.m.Rooms())
	}
	// Refusals retrying cannot fix: failed, never joined again.
	for jid, cond := range map[string]string{"b@c": "not-authorized", "c@c": "registration-required", "d@c": "forbidden"} {
		e.m.Presence(&stanza.Presence{From: jid + "/n", Type: "error", Error: cond})
		if e.state(t, jid) != Failed {
			t.Fatalf("%s after %s: %v", jid, cond, e.state(t, jid))
		}
	}
	e.advance(10 * time.Minute)
	e.m.Offline()
	e.m.Online(e.s)
	if out := e.s.take(); len(out) != 1 { // only ops
		t.Fatalf("failed rooms joined again: %q", out)
	}
	if v := testutil.ToFloat64(e.met.Rooms.WithLabelValues("failed")); v != 3 {
		t.Fatalf("rooms{failed} = %v", v)
	}
	// A config change of the room's entry tries again.
	e.m.Configure(Config{Rooms: []Room{{JID: ops, Nick: "notices"}, {JID: "b@c", Nick: "n", Password: "right"}}})
	out := e.s.take()
	if len(out) != 1 || !strings.Contains(out[0], "to='b@c/n'") || !strings.Contains(out[0], "<password>right</password>") {
		t.Fatalf("after the fix: %q", out)
	}
}

func TestKickedBannedDestroyed(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}}})
	e.s.take()
	e.m.Presence(self(ops+"/notices", "available"))
	e.m.Presence(self(ops+"/notices", "unavailable", 307))
	if e.state(t, ops) != Joining {
		t.Fatal("kicked: not rejoining")
	}
	e.advance(500 * time.Millisecond)
	if len(e.s.take()) != 0 {
		t.Fatal("rejoined before the backoff")
	}
	e.advance(time.Second)
	joinID(t, e.s.take(), ops+"/notices")
	e.m.Presence(self(ops+"/notices", "available"))
	e.m.Presence(self(ops+"/notices", "unavailable", 301))
	if e.state(t, ops) != Failed {
		t.Fatal("banned: not failed")
	}
	e.advance(time.Hour)
	if out := e.s.take(); len(out) != 0 {
		t.Fatalf("rejoined after a ban: %q", out)
	}
	e2 := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}}})
	e2.m.Presence(self(ops+"/notices", "available"))
	p := self(ops+"/notices", "unavailable")
	p.MUC.Destroyed = true
	e2.m.Presence(p)
	if e2.state(t, ops) != Failed {
		t.Fatal("destroyed: not failed")
	}
}

// TestDestroyedWithout110: ejabberd 23.01 tells an occupant that the room
// was destroyed with an unavailable presence from its nick carrying
// <destroy/> but no status 110 (as XEP-0045's example 201); the room is
// failed all the same, and not joined again (which would create it).
func TestDestroyedWithout110(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}}, SelfPing: time.Minute})
	e.s.take()
	e.m.Presence(self(ops+"/notices", "available"))
	// Another occupant leaving (no 110, no destroy) is not about us.
	e.m.Presence(&stanza.Presence{From: ops + "/alice", Type: "unavailable", MUC: &stanza.MUCUser{Role: "none"}})
	if e.state(t, ops) != Joined {
		t.Fatal("another occupant's leaving moved the room")
	}
	// As ejabberd sends it: <x><destroy><reason/></destroy><item role='none' affiliation='none'/></x>.
	if !e.m.Presence(&stanza.Presence{From: ops + "/notices", Type: "unavailable", MUC: &stanza.MUCUser{Destroyed: true, Role: "none", Affiliation: "none"}}) {
		t.Fatal("the destroy presence was not the manager's")
	}
	if e.state(t, ops) != Failed {
		t.Fatal("destroyed without status 110: not failed")
	}
	if v := testutil.ToFloat64(e.met.Rooms.WithLabelValues("failed")); v != 1 {
		t.Fatalf("rooms{failed} = %v", v)
	}
	e.advance(time.Hour)
	if out := e.s.take(); len(out) != 0 {
		t.Fatalf("wrote after the room was destroyed: %q", out)
	}
	if v := testutil.ToFloat64(e.met.Rejoins); v != 0 {
		t.Fatalf("rejoins = %v", v)
	}
}

func TestSessionAndReload(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}}})
	e.s.take()
	e.m.Presence(self(ops+"/notices", "available"))
	e.m.Offline()
	if e.state(t, ops) != Joining {
		t.Fatal("joined without a session")
	}
	e.advance(time.Minute)
	if len(e.s.take()) != 0 {
		t.Fatal("join written without a session")
	}
	e.m.Online(e.s)
	joinID(t, e.s.take(), ops+"/notices")
	e.m.Presence(self(ops+"/notices", "available"))
	// Reload: one room added, the other removed (left).
	e.m.Configure(Config{Rooms: []Room{{JID: "dev@conference.example.org", Nick: "bot"}}})
	out := e.s.take()
	if len(out) != 2 || !strings.Contains(out[0], "type='unavailable'") || !strings.Contains(out[0], "to='"+ops+"/notices'") ||
		!strings.Contains(out[1], "to='dev@conference.example.org/bot'") {
		t.Fatalf("reload wrote %q", out)
	}
	if ok, _, _, _ := e.m.Target(ops); ok {
		t.Fatal("removed room still configured")
	}
}

func TestMessages(t *testing.T) {
	e := newEnv(t, Config{Rooms: []Room{{JID: ops, Nick: "notices"}}})
	e.m.Presence(self(ops+"/notices", "available"))
	for i, tc := range []struct {
		ev       stanza.Event
		mentions bool
		keep     bool
		nick     string
	}{
		0: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/bob", Text: "hi"}, keep: true, nick: "bob"},
		1: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/notices", Text: "echo"}},
		2: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/bob", Text: "old", Delayed: true}},
		3: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops, Text: "room notice"}},
		4: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/bob", Text: "hi all"}, mentions: true},
		5: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/bob", Text: "NOTICES: status?"}, mentions: true, keep: true, nick: "bob"},
		6: {ev: stanza.Event{Kind: "message", Type: "chat", From: ops + "/bob", Text: "pm"}, keep: true, nick: "bob"},
		7: {ev: stanza.Event{Kind: "message", Type: "groupchat", From: "other@conference.example.org/bob", Text: "x"}, keep: true},
	} {
		e.m.Configure(Config{Rooms: []Room{{JID: ops, Nick: "notices"}}, Mentions: tc.mentions})
		ev := tc.ev
		if got := e.m.Message(&ev); got != tc.keep || ev.Nick != tc.nick || (tc.nick != "" && ev.Room != ops) {
			t.Errorf("%d: keep %v room %q nick %q", i, got, ev.Room, ev.Nick)
		}
	}
	// The room's echo of our own message goes to the Echo hook (which
	// learns the id the room gave it).
	var echoed []string
	e.m.o.Echo = func(ev *stanza.Event) { echoed = append(echoed, ev.StanzaID) }
	echo := stanza.Event{Kind: "message", Type: "groupchat", From: ops + "/notices", Text: "ours", StanzaID: "room-1"}
	if e.m.Message(&echo) || len(echoed) != 1 || echoed[0] != "room-1" {
		t.Fatalf("echo: hook got %q", echoed)
	}
	// A bounce saying we are not in the room rejoins it; it is still an
	// event (an error for our item).
	ev := stanza.Event{Kind: "error", From: ops, Condition: "not-acceptable"}
	if !e.m.Message(&ev) || e.state(t, ops) != Joining {
		t.Fatal("not-acceptable bounce")
	}
}
