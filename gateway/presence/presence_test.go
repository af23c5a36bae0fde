package presence

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"xmppgw/stanza"
)

// presWriter is a fake session for the presence code: it records writes
// and confirms every barrier at once.
type presWriter struct {
	mu     sync.Mutex
	writes strings.Builder
	seq    uint64
}

func (w *presWriter) Write(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes.Write(p)
	return nil
}

func (w *presWriter) WriteWithBarrier(p []byte) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes.Write(p)
	w.writes.WriteString("<barrier/>")
	w.seq++
	return w.seq, nil
}

// Notify is never signalled: Confirmed is always up to date.
func (w *presWriter) Notify() <-chan struct{} { return nil }

func (w *presWriter) Confirmed() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// take returns what was written since the last call.
func (w *presWriter) take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.writes.String()
	w.writes.Reset()
	return s
}

type presHarness struct {
	t      *testing.T
	set    *settings
	p      *Service
	w      *presWriter
	mu     sync.Mutex
	events []stanza.Event
}

const (
	tLocal   = "notices@gw.example.org"
	tAlice   = "alice@example.org"
	tAliceR  = "alice@example.org/phone"
	tStatus  = "at your service"
	tDomain  = "gw.example.org"
	tOther   = "other@gw.example.org"
	tAliceR2 = "alice@example.org/laptop"
)

func newPresHarness(t *testing.T, mode string) *presHarness {
	t.Helper()
	p, set := testService(t, stanza.ModeComponent, mode, nil)
	h := &presHarness{t: t, set: set, p: p, w: &presWriter{}}
	h.p.emit = func(ev *stanza.Event) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, *ev)
	}
	return h
}

// in handles one received presence synchronously.
func (h *presHarness) in(typ, from, to string) {
	h.inP(stanza.Presence{Type: typ, From: from, To: to})
}

func (h *presHarness) inP(pr stanza.Presence) {
	h.p.handle(&presJob{op: opInbound, w: h.w, pr: pr})
}

// sentItem handles a worker's presence item synchronously.
func (h *presHarness) sentItem(typ, from, to string) {
	h.p.handle(&presJob{op: opSent, w: h.w, pr: stanza.Presence{Type: typ, From: from, To: to}})
}

func (h *presHarness) takeEvents() []stanza.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs := h.events
	h.events = nil
	return evs
}

func (h *presHarness) expectWritten(want string) {
	h.t.Helper()
	if got := h.w.take(); got != want {
		h.t.Errorf("written:\n got %s\nwant %s", got, want)
	}
}

func (h *presHarness) subscriber(local, contact string) bool {
	ok, err := h.p.st.isSubscriber(local, contact)
	if err != nil {
		h.t.Fatal(err)
	}
	return ok
}

func (h *presHarness) subscription(local, contact string) subState {
	st, err := h.p.st.subscription(local, contact)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

func TestPresenceAutoSubscribe(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.inP(stanza.Presence{Type: "subscribe", From: tAlice, To: tLocal, ID: "s1"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='subscribed' id='s1'/>` +
		`<presence from='notices@gw.example.org' to='alice@example.org'><status>at your service</status></presence>` +
		`<presence from='notices@gw.example.org' to='alice@example.org' type='subscribe'/>`)
	if !h.subscriber(tLocal, tAlice) || h.subscription(tLocal, tAlice) != subPending {
		t.Fatal("subscriber or pending subscription not stored")
	}
	if v := testutil.ToFloat64(h.p.m.PresenceSubscribers); v != 1 {
		t.Errorf("subscribers gauge %v", v)
	}
	// asked again (e.g. the contact's server resends): approved again, no
	// second subscribe back
	h.in("subscribe", tAliceR, tLocal)
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='subscribed'/>` +
		`<presence from='notices@gw.example.org' to='alice@example.org'><status>at your service</status></presence>`)
	if evs := h.takeEvents(); len(evs) != 0 {
		t.Errorf("events in auto mode: %+v", evs)
	}
	// another JID of the component, and a resource on the local JID
	h.in("subscribe", tAlice, tOther+"/x")
	if !h.subscriber(tOther, tAlice) {
		t.Error("subscription to another local JID not stored (bare)")
	}
	h.w.take()
	// not our domain, or from our own domain: ignored
	h.in("subscribe", tAlice, "x@elsewhere.org")
	h.in("subscribe", "bot@"+tDomain, tLocal)
	h.in("subscribe", "", tLocal)
	h.expectWritten("")
}

func TestPresenceDeny(t *testing.T) {
	h := newPresHarness(t, "deny")
	h.inP(stanza.Presence{Type: "subscribe", From: tAliceR, To: tLocal, ID: "d1"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='unsubscribed' id='d1'/>`)
	if h.subscriber(tLocal, tAlice) {
		t.Error("denied subscriber stored")
	}
}

func TestPresenceForward(t *testing.T) {
	h := newPresHarness(t, "forward")
	h.inP(stanza.Presence{Type: "subscribe", From: tAlice, To: tLocal, ID: "f1"})
	h.expectWritten("")
	evs := h.takeEvents()
	if len(evs) != 1 || evs[0].Kind != "subscription" || evs[0].Type != "subscribe" ||
		evs[0].From != tAlice || evs[0].To != tLocal || evs[0].ID != "f1" {
		t.Fatalf("events %+v", evs)
	}
	if h.subscriber(tLocal, tAlice) {
		t.Fatal("stored before the worker decided")
	}
	// the worker approves: recorded, and our presence follows
	h.sentItem("subscribed", tLocal, tAlice)
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org'><status>at your service</status></presence>`)
	if !h.subscriber(tLocal, tAlice) {
		t.Fatal("worker's subscribed not recorded")
	}
	// redelivered item: nothing more
	h.sentItem("subscribed", tLocal, tAlice)
	h.expectWritten("")
	// a known subscriber asking again is approved without a new decision
	h.in("subscribe", tAlice, tLocal)
	if evs := h.takeEvents(); len(evs) != 0 {
		t.Errorf("re-subscribe forwarded: %+v", evs)
	}
	if got := h.w.take(); !strings.Contains(got, "type='subscribed'") {
		t.Errorf("re-subscribe not approved: %s", got)
	}
	// unsubscribe takes effect and is forwarded
	h.in("unsubscribe", tAlice, tLocal)
	if h.subscriber(tLocal, tAlice) {
		t.Error("unsubscribe did not remove the subscriber")
	}
	evs = h.takeEvents()
	if len(evs) != 1 || evs[0].Kind != "subscription" || evs[0].Type != "unsubscribe" {
		t.Errorf("events %+v", evs)
	}
	// the worker's own subscribe / unsubscribe / unsubscribed items
	h.w.take()
	h.sentItem("subscribe", tLocal, tAlice)
	if h.subscription(tLocal, tAlice) != subPending {
		t.Error("worker's subscribe not recorded as pending")
	}
	h.sentItem("unsubscribe", tLocal, tAlice)
	if h.subscription(tLocal, tAlice) != subNone {
		t.Error("worker's unsubscribe not recorded")
	}
	h.sentItem("subscribed", tLocal, tAlice)
	h.w.take()
	h.sentItem("unsubscribed", tLocal, tAlice)
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='unavailable'/>`)
	if h.subscriber(tLocal, tAlice) {
		t.Error("worker's unsubscribed not recorded")
	}
}

func TestPresenceProbe(t *testing.T) {
	h := newPresHarness(t, "auto")
	// RFC 6121 §4.3.2: a prober without a subscription gets unsubscribed
	h.inP(stanza.Presence{Type: "probe", From: tAliceR, To: tLocal, ID: "p1"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='unsubscribed'/>`)
	h.in("subscribe", tAlice, tLocal)
	h.w.take()
	h.inP(stanza.Presence{Type: "probe", From: tAliceR, To: tLocal, ID: "p2"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org/phone' id='p2'><status>at your service</status></presence>`)
	// after goodbye: unavailable
	h.p.sayGoodbye(h.w)
	h.w.take()
	h.inP(stanza.Presence{Type: "probe", From: tAliceR, To: tLocal, ID: "p3"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org/phone' type='unavailable' id='p3'/>`)
}

func TestPresenceUnsubscribeBothWays(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.in("subscribe", tAlice, tLocal)
	h.in("subscribed", tAlice, tLocal) // approves our subscribe back
	if h.subscription(tLocal, tAlice) != subApproved {
		t.Fatal("approval not recorded")
	}
	h.in("available", tAliceR, tLocal)
	h.takeEvents()
	h.w.take()

	// the contact ends our subscription: its presence is forgotten
	h.in("unsubscribed", tAlice, tLocal)
	if h.subscription(tLocal, tAlice) != subNone {
		t.Error("subscription not removed")
	}
	evs := h.takeEvents()
	if len(evs) != 1 || evs[0].Type != "unavailable" || evs[0].From != tAliceR {
		t.Errorf("events %+v", evs)
	}
	if h.p.Lookup(tAlice).Online {
		t.Error("still online")
	}
	// presence from a contact we are no longer subscribed to is ignored
	h.in("available", tAliceR, tLocal)
	if evs := h.takeEvents(); len(evs) != 0 {
		t.Errorf("events from a non-contact: %+v", evs)
	}

	// the contact unsubscribes from us
	h.inP(stanza.Presence{Type: "unsubscribe", From: tAlice, To: tLocal, ID: "u1"})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='unsubscribed' id='u1'/>` +
		`<presence from='notices@gw.example.org' to='alice@example.org' type='unavailable'/>`)
	if h.subscriber(tLocal, tAlice) {
		t.Error("subscriber not removed")
	}
	// an unsolicited subscribed is ignored (RFC 6121 §3.1.6)
	h.in("subscribed", tAlice, tLocal)
	if h.subscription(tLocal, tAlice) != subNone {
		t.Error("unsolicited subscribed recorded")
	}
}

func TestPresenceTracking(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.in("subscribe", tAlice, tLocal)
	h.in("subscribed", tAlice, tLocal)
	h.in("subscribe", tAlice, tOther)
	h.in("subscribed", tAlice, tOther)
	h.w.take()

	online := func() float64 { return testutil.ToFloat64(h.p.m.ContactsOnline) }
	h.inP(stanza.Presence{Type: "available", From: tAliceR, To: tLocal, Show: "away", Status: "lunch", Priority: 5})
	evs := h.takeEvents()
	if len(evs) != 1 || evs[0].Kind != "presence" || evs[0].Type != "available" || evs[0].From != tAliceR ||
		evs[0].To != tLocal || evs[0].Show != "away" || evs[0].Status != "lunch" {
		t.Fatalf("events %+v", evs)
	}
	if online() != 1 {
		t.Errorf("contacts online %v", online())
	}
	// the same again (e.g. to another local JID, or a repeat): the event
	// goes to that local JID only, nothing for a repeat
	h.inP(stanza.Presence{Type: "available", From: tAliceR, To: tLocal, Show: "away", Status: "lunch", Priority: 5})
	if evs := h.takeEvents(); len(evs) != 0 {
		t.Errorf("repeat published: %+v", evs)
	}
	h.inP(stanza.Presence{Type: "available", From: tAliceR, To: tOther, Show: "away", Status: "lunch"})
	if evs := h.takeEvents(); len(evs) != 1 || evs[0].To != tOther {
		t.Errorf("events %+v", evs)
	}
	h.in("available", tAliceR2, tLocal)
	h.takeEvents()
	ans := h.p.Lookup(tAlice)
	if !ans.Online || len(ans.Resources) != 2 || ans.Resources[0].Resource != "laptop" ||
		ans.Resources[1].Resource != "phone" || ans.Resources[1].Show != "away" || ans.Resources[1].Priority != 5 {
		t.Errorf("lookup %+v", ans)
	}
	if online() != 1 {
		t.Errorf("contacts online %v, want 1 (one contact)", online())
	}

	// one resource goes
	h.in("unavailable", tAliceR2, tLocal)
	if evs := h.takeEvents(); len(evs) != 1 || evs[0].Type != "unavailable" || evs[0].From != tAliceR2 {
		t.Errorf("events %+v", evs)
	}
	// unavailable from the bare JID: every resource of that view goes
	h.in("unavailable", tAlice, tLocal)
	if evs := h.takeEvents(); len(evs) != 1 || evs[0].From != tAliceR || evs[0].To != tLocal {
		t.Errorf("events %+v", evs)
	}
	if !h.p.Lookup(tAlice).Online { // still seen through tOther
		t.Error("offline although available to another local JID")
	}
	h.in("unavailable", tAliceR, tOther)
	h.takeEvents()
	if h.p.Lookup(tAlice).Online || online() != 0 {
		t.Errorf("still online: %+v, gauge %v", h.p.Lookup(tAlice), online())
	}
	if len(h.p.contacts) != 0 {
		t.Errorf("empty contact kept: %+v", h.p.contacts)
	}
}

func TestPresenceReconnectSweep(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.in("subscribe", tAlice, tLocal)
	h.in("subscribed", tAlice, tLocal)
	h.in("available", tAliceR, tLocal)
	h.in("available", tAliceR2, tLocal)
	h.w.take()
	h.takeEvents()

	// reconnect: available to subscribers, probes to approved contacts
	h.p.handleCtl(ctlReq{op: ctlOnline, w: h.w})
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org'><status>at your service</status></presence>` +
		`<presence from='notices@gw.example.org' to='alice@example.org' type='probe'/>`)
	// only the phone answers the probe; the laptop went away meanwhile
	h.in("available", tAliceR, tLocal)
	h.p.sweep()
	evs := h.takeEvents()
	if len(evs) != 1 || evs[0].Type != "unavailable" || evs[0].From != tAliceR2 {
		t.Errorf("events %+v", evs)
	}
	if ans := h.p.Lookup(tAlice); len(ans.Resources) != 1 || ans.Resources[0].Resource != "phone" {
		t.Errorf("lookup %+v", ans)
	}
}

func TestPresenceGoodbyeAndReload(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.in("subscribe", tAlice, tLocal)
	h.in("subscribe", "bob@example.org", tOther)
	h.w.take()
	h.p.sayGoodbye(h.w)
	h.expectWritten(`<presence from='notices@gw.example.org' to='alice@example.org' type='unavailable'/>` +
		`<presence from='other@gw.example.org' to='bob@example.org' type='unavailable'/><barrier/>`)
	// after goodbye nothing announces availability
	h.p.handleCtl(ctlReq{op: ctlAnnounce, w: h.w})
	h.expectWritten("")

	h.p.handleCtl(ctlReq{op: ctlOnline, w: h.w})
	h.w.take()
	h.set.setStatus("new status")
	h.p.handleCtl(ctlReq{op: ctlAnnounce, w: h.w})
	got := h.w.take()
	if strings.Count(got, "<status>new status</status>") != 2 || strings.Contains(got, "probe") {
		t.Errorf("re-announce: %s", got)
	}
}

func TestPresenceWorkerAndDrops(t *testing.T) {
	h := newPresHarness(t, "auto")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }()
	h.p.Offer(h.w, &stanza.Presence{Type: "subscribe", From: tAlice, To: tLocal})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(h.w.take(), "subscribed") {
		if time.Now().After(deadline) {
			t.Fatal("worker did not answer")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// goodbye goes through the worker and waits for the barrier
	for !h.p.running.Load() {
		time.Sleep(time.Millisecond)
	}
	w := &presWriter{}
	done2 := make(chan struct{})
	go func() {
		h.p.handleCtlVia(w)
		close(done2)
	}()
	<-done2
	if got := w.take(); !strings.HasSuffix(got, "<barrier/>") || !strings.Contains(got, "unavailable") {
		t.Errorf("goodbye: %s", got)
	}
	cancel()
	<-done

	// the worker is stopped: the queue fills up and the rest is dropped
	for range presenceQueue + 10 {
		h.p.Offer(h.w, &stanza.Presence{Type: "probe", From: tAlice, To: tLocal})
	}
	if v := testutil.ToFloat64(h.p.m.PresenceDropped); v != 10 {
		t.Errorf("dropped %v, want 10", v)
	}
}

// handleCtlVia runs goodbye through the worker with w as the session.
func (p *Service) handleCtlVia(w Writer) {
	done := make(chan struct{})
	p.ctl <- ctlReq{op: ctlGoodbye, w: w, done: done}
	<-done
}

func TestPresenceSentHook(t *testing.T) {
	h := newPresHarness(t, "forward")
	// messages and availability items are not subscription work
	h.p.Sent(&stanza.Info{Kind: "message"})
	h.p.Sent(&stanza.Info{Kind: "presence", PresenceType: "available", From: tLocal, To: tAlice})
	if len(h.p.jobs) != 0 {
		t.Fatal("queued non-subscription work")
	}
	h.p.Sent(&stanza.Info{Kind: "presence", PresenceType: "subscribed", From: tLocal, To: tAlice})
	if len(h.p.jobs) != 1 {
		t.Fatal("subscribed item not queued")
	}
	j := <-h.p.jobs
	h.p.handle(&j)
	if !h.subscriber(tLocal, tAlice) {
		t.Error("not recorded")
	}
}

// An unknown contact is offline with an empty list of resources (JSON []
// rather than null), like a known one that is offline.
func TestPresenceLookupUnknown(t *testing.T) {
	h := newPresHarness(t, "auto")
	if ans := h.p.Lookup("bob@example.org"); ans.Online || ans.Resources == nil || ans.JID != "bob@example.org" {
		t.Fatalf("Lookup = %+v", ans)
	}
}

func TestPresenceClientModeTracksOnly(t *testing.T) {
	p, _ := testService(t, stanza.ModeClient, "auto", nil)
	if p.st != nil {
		t.Fatal("client mode opened a store")
	}
	var evs []stanza.Event
	p.emit = func(ev *stanza.Event) { evs = append(evs, *ev) }
	w := &presWriter{}
	p.handle(&presJob{w: w, pr: stanza.Presence{Type: "subscribe", From: tAlice, To: "bot@example.org/gw"}})
	p.handle(&presJob{w: w, pr: stanza.Presence{Type: "available", From: "bot@example.org/gw", To: "bot@example.org/gw"}})
	p.handle(&presJob{w: w, pr: stanza.Presence{Type: "available", From: tAliceR, To: "bot@example.org/gw"}})
	if got := w.take(); got != "" {
		t.Errorf("client mode wrote %s", got)
	}
	if len(evs) != 1 || evs[0].From != tAliceR || !p.Lookup(tAlice).Online {
		t.Errorf("events %+v", evs)
	}
	p.Sent(&stanza.Info{Kind: "presence", PresenceType: "subscribed", From: "bot@example.org", To: tAlice})
	if len(p.jobs) != 0 {
		t.Error("client mode queued subscription work")
	}
	p.Goodbye() // no store, no session: nothing to do, returns at once
}
