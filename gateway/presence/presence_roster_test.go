package presence

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"xmppgw/stanza"
)

func clientPresence(t *testing.T) (*Service, *[]stanza.Event) {
	t.Helper()
	p, _ := testService(t, stanza.ModeClient, "auto", nil)
	evs := &[]stanza.Event{}
	p.emit = func(ev *stanza.Event) { *evs = append(*evs, *ev) }
	return p, evs
}

func runJobs(p *Service) {
	for len(p.jobs) > 0 {
		j := <-p.jobs
		p.handle(&j)
	}
}

// Once the server told the roster, client mode tracks only contacts the
// account is subscribed to: a stranger's directed presence grows nothing.
func TestPresenceClientModeStrangers(t *testing.T) {
	p, evs := clientPresence(t)
	w := &presWriter{}
	in := func(from string) {
		p.handle(&presJob{w: w, pr: stanza.Presence{Type: "available", From: from, To: "bot@example.org/gw"}})
	}
	p.offerRoster(true, []rosterEntry{{tAlice, "both"}, {"bob@example.org", "from"}, {"carol@example.org", "to"}})
	runJobs(p)
	for i := range 500 {
		in(fmt.Sprintf("mallory%d@evil.example/r", i))
		in(fmt.Sprintf("bob@example.org/r%d", i)) // subscribed to us, not we to it
	}
	if len(p.contacts) != 0 || p.nEntries != 0 || len(*evs) != 0 {
		t.Fatalf("strangers tracked: %d contacts, %d events", len(p.contacts), len(*evs))
	}
	in(tAliceR)
	in("carol@example.org/x")
	if len(p.contacts) != 2 || !p.Lookup(tAlice).Online {
		t.Fatalf("contacts not tracked: %d", len(p.contacts))
	}
	// a push ending our subscription drops what was tracked
	*evs = nil
	p.offerRoster(false, []rosterEntry{{tAlice, "from"}})
	runJobs(p)
	if p.Lookup(tAlice).Online || len(*evs) != 1 || (*evs)[0].Type != "unavailable" || (*evs)[0].From != tAliceR {
		t.Errorf("after the push: %+v", *evs)
	}
	in(tAliceR)
	if p.Lookup(tAlice).Online {
		t.Error("tracked after the subscription ended")
	}
	// a push adding one, and a full roster replacing all
	p.offerRoster(false, []rosterEntry{{"dave@example.org", "to"}})
	runJobs(p)
	in("dave@example.org/y")
	if !p.Lookup("dave@example.org").Online {
		t.Error("pushed contact not tracked")
	}
	p.offerRoster(true, []rosterEntry{{"dave@example.org", "both"}})
	runJobs(p)
	if p.Lookup("carol@example.org").Online || !p.Lookup("dave@example.org").Online {
		t.Error("full roster not applied")
	}
	// the roster held is bounded too
	big := make([]rosterEntry, presenceMaxContacts+10)
	for i := range big {
		big[i] = rosterEntry{fmt.Sprintf("u%d@example.org", i), "to"}
	}
	p.offerRoster(true, big)
	runJobs(p)
	if len(p.roster) != presenceMaxContacts {
		t.Errorf("roster of %d", len(p.roster))
	}
}

// Before a roster is known, what client mode tracks is bounded by the caps.
func TestPresenceClientModeBoundedWithoutRoster(t *testing.T) {
	p, _ := clientPresence(t)
	p.lim = presenceLimits{contacts: 10, resources: 2, entries: 15}
	for i := range 300 {
		p.handle(&presJob{w: &presWriter{}, pr: stanza.Presence{Type: "available",
			From: fmt.Sprintf("m%d@evil.example/r%d", i%50, i), To: "bot@example.org/gw"}})
	}
	if len(p.contacts) > 10 || p.nEntries > 15 {
		t.Errorf("%d contacts, %d entries", len(p.contacts), p.nEntries)
	}
}

// The session's roster reaches the worker through Roster (the
// component.RosterInbound side): the full roster drops what was tracked of
// strangers before it was known, and afterwards a stranger's directed
// presence grows no tracked state; pushes add and remove contacts.
func TestRosterFromSession(t *testing.T) {
	p, evs := clientPresence(t)
	w := &presWriter{}
	in := func(from string) {
		p.handle(&presJob{w: w, pr: stanza.Presence{Type: "available", From: from, To: "bot@example.org/gw"}})
	}
	in("mallory@evil.example/x") // before the roster: tracked, within the caps
	if len(p.contacts) != 1 {
		t.Fatalf("%d contacts before the roster", len(p.contacts))
	}
	p.Roster(true, []stanza.RosterItem{
		{JID: tAlice, Subscription: "both"},
		{JID: "bob@example.org", Subscription: "from"},
		{JID: "carol@example.org", Subscription: "none"},
		{JID: "not a jid@", Subscription: "to"},
	})
	runJobs(p)
	if len(p.roster) != 1 || len(p.contacts) != 0 || p.nEntries != 0 {
		t.Fatalf("after the roster: roster %v, %d contacts, %d entries", p.roster, len(p.contacts), p.nEntries)
	}
	*evs = nil
	for i := range 2000 {
		in(fmt.Sprintf("m%d@evil.example/r%d", i, i))
		in(fmt.Sprintf("bob@example.org/r%d", i))
	}
	if len(p.contacts) != 0 || p.nEntries != 0 || len(*evs) != 0 {
		t.Fatalf("strangers tracked: %d contacts, %d entries, %d events", len(p.contacts), p.nEntries, len(*evs))
	}
	in(tAliceR)
	if !p.Lookup(tAlice).Online || len(p.contacts) != 1 {
		t.Fatal("roster contact not tracked")
	}
	p.Roster(false, []stanza.RosterItem{{JID: "carol@example.org", Subscription: "to"}})
	runJobs(p)
	in("carol@example.org/c")
	if !p.Lookup("carol@example.org").Online {
		t.Error("pushed contact not tracked")
	}
	*evs = nil
	p.Roster(false, []stanza.RosterItem{{JID: tAlice, Subscription: "remove"}})
	runJobs(p)
	if p.Lookup(tAlice).Online || len(*evs) != 1 || (*evs)[0].Type != "unavailable" {
		t.Errorf("after removing alice: %+v", *evs)
	}
}

// Roster never blocks the read loop: with the worker's queue full
// the roster is dropped and counted.
func TestRosterNeverBlocks(t *testing.T) {
	p, _ := clientPresence(t)
	for len(p.jobs) < cap(p.jobs) {
		p.jobs <- presJob{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Roster(true, []stanza.RosterItem{{JID: tAlice, Subscription: "both"}})
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Roster blocked on a full worker queue")
	}
	if got := testutil.ToFloat64(p.m.PresenceDropped); got != 1 {
		t.Errorf("dropped = %v", got)
	}
}
