package presence

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"xmppgw/stanza"
)

func limited(p *Service, limit string) float64 {
	return testutil.ToFloat64(p.m.PresenceLimited.WithLabelValues(limit))
}

// A subscription flood from one JID to ever new localparts (auto mode
// accepts any localpart) is refused past the per-contact cap with
// unsubscribed, costs no store write, and never touches other subscribers.
func TestPresenceSubscriptionFlood(t *testing.T) {
	for _, mode := range []string{"auto", "forward"} {
		t.Run(mode, func(t *testing.T) {
			h := newPresHarness(t, mode)
			h.p.st.setLimits(storeLimits{perContact: 5, perDomain: 1000, total: 1000})
			h.in("subscribe", tAlice, tLocal)
			if mode == "forward" {
				h.sentItem("subscribed", tLocal, tAlice)
			}
			h.w.take()
			h.takeEvents()
			for i := range 300 {
				h.inP(stanza.Presence{Type: "subscribe", From: "eve@evil.example/x", To: fmt.Sprintf("n%d@%s", i, tDomain), ID: fmt.Sprint("f", i)})
				if mode == "forward" && i < 5 {
					h.sentItem("subscribed", fmt.Sprintf("n%d@%s", i, tDomain), "eve@evil.example")
				}
			}
			out := h.w.take()
			if n := strings.Count(out, "type='unsubscribed'"); n != 295 {
				t.Errorf("%d refusals, want 295", n)
			}
			if !strings.Contains(out, "<presence from='n299@gw.example.org' to='eve@evil.example' type='unsubscribed' id='f299'/>") {
				t.Errorf("refusal not answered with unsubscribed and the request's id: %.300s", out)
			}
			if evs := h.takeEvents(); mode == "forward" && len(evs) != 5 || mode == "auto" && len(evs) != 0 {
				t.Errorf("%d events", len(evs))
			}
			if n, _, _ := h.p.st.counts(); n != 6 {
				t.Errorf("%d subscribers, want 6", n)
			}
			if v := testutil.ToFloat64(h.p.m.PresenceSubscribers); v != 6 {
				t.Errorf("gauge %v", v)
			}
			if v := limited(h.p, "subscriptions_per_contact"); v != 295 {
				t.Errorf("limited counter %v", v)
			}
			if !h.subscriber(tLocal, tAlice) {
				t.Error("an existing subscriber was touched")
			}
			// refused again: no write at all
			w := h.p.st.writeCount()
			for i := range 100 {
				h.in("subscribe", "eve@evil.example", fmt.Sprintf("m%d@%s", i, tDomain))
				h.in("unsubscribe", "mallory@evil.example", fmt.Sprintf("m%d@%s", i, tDomain))
			}
			if d := h.p.st.writeCount() - w; d != 0 {
				t.Errorf("%d store writes for refused subscribes and unknown unsubscribes", d)
			}
			// the unsubscribe of a stranger is not answered
			if out := h.w.take(); strings.Contains(out, "mallory") {
				t.Errorf("answered a stranger's unsubscribe: %.200s", out)
			}
		})
	}
}

// In auto mode the subscribe back is skipped, not failed, when our own
// subscriptions are at their cap; the contact is still approved.
func TestPresenceSubscribeBackAtCap(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.p.st.setLimits(storeLimits{perContact: 2, perDomain: 1000, total: 1000})
	// our subscriptions to carol are at the per-contact cap (a worker's items)
	h.sentItem("subscribe", "x1@"+tDomain, "carol@example.org")
	h.sentItem("subscribe", "x2@"+tDomain, "carol@example.org")
	h.in("subscribe", "carol@example.org", tOther)
	got := h.w.take()
	if !strings.Contains(got, "to='carol@example.org' type='subscribed'") {
		t.Fatalf("not approved: %s", got)
	}
	if h.subscription(tOther, "carol@example.org") != subNone || strings.Contains(got, "to='carol@example.org' type='subscribe'") {
		t.Error("subscribed back past the cap")
	}
}

func TestPresenceTrackingCaps(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.p.lim = presenceLimits{contacts: 3, resources: 4, entries: 6}
	approve := func(contact, local string) {
		h.in("subscribe", contact, local)
		h.in("subscribed", contact, local)
	}
	for _, c := range []string{"a@x.org", "b@x.org", "c@x.org", "d@x.org"} {
		approve(c, tLocal)
	}
	approve("a@x.org", tOther)
	h.w.take()
	// one contact: at most 4 entries (resources over all local JIDs)
	for i := range 10 {
		h.in("available", fmt.Sprintf("a@x.org/r%d", i), tLocal)
		h.in("available", fmt.Sprintf("a@x.org/r%d", i), tOther)
	}
	if n := len(h.p.Lookup("a@x.org").Resources); n != 2 {
		t.Errorf("%d resources", n)
	}
	if evs := h.takeEvents(); len(evs) != 4 {
		t.Errorf("%d events, want 4", len(evs))
	}
	if v := limited(h.p, "resources"); v != 16 {
		t.Errorf("limited resources %v", v)
	}
	// a known resource still updates at the cap
	h.inP(stanza.Presence{Type: "available", From: "a@x.org/r0", To: tLocal, Show: "away"})
	if evs := h.takeEvents(); len(evs) != 1 || evs[0].Show != "away" {
		t.Errorf("update at the cap: %+v", evs)
	}
	// entries in total: 6
	h.in("available", "b@x.org/1", tLocal)
	h.in("available", "b@x.org/2", tLocal)
	h.in("available", "c@x.org/1", tLocal)
	if h.p.Lookup("c@x.org").Online || h.p.nEntries != 6 {
		t.Errorf("past the entries cap: %d entries", h.p.nEntries)
	}
	if v := limited(h.p, "entries"); v != 1 {
		t.Errorf("limited entries %v", v)
	}
	// a resource going frees its room
	h.in("unavailable", "b@x.org/2", tLocal)
	h.in("available", "c@x.org/1", tLocal)
	if !h.p.Lookup("c@x.org").Online || h.p.nEntries != 6 {
		t.Errorf("room not freed: %d", h.p.nEntries)
	}
	// contacts: 3 (a, b, c); d is refused even with room for entries
	h.in("unavailable", "a@x.org", tOther)
	h.in("available", "d@x.org/1", tLocal)
	if h.p.Lookup("d@x.org").Online || len(h.p.contacts) != 3 {
		t.Errorf("past the contacts cap: %d", len(h.p.contacts))
	}
	if v := limited(h.p, "contacts"); v != 1 {
		t.Errorf("limited contacts %v", v)
	}
	// the counts stay exact through drop and sweep
	h.in("unsubscribed", "a@x.org", tLocal)
	h.p.handleCtl(ctlReq{op: ctlOnline, w: h.w})
	h.p.sweep()
	if h.p.nEntries != 0 || len(h.p.contacts) != 0 {
		t.Errorf("after sweep: %d entries, %d contacts", h.p.nEntries, len(h.p.contacts))
	}
	h.in("available", "d@x.org/1", tLocal)
	if !h.p.Lookup("d@x.org").Online || h.p.nEntries != 1 {
		t.Errorf("after sweep: %d entries", h.p.nEntries)
	}
}

// A status is cut to presenceMaxStatus bytes at a UTF-8 boundary before it
// is queued, so the queue and the tracked state hold no 256 KiB strings.
func TestPresenceStatusTruncated(t *testing.T) {
	h := newPresHarness(t, "auto")
	h.in("subscribe", tAlice, tLocal)
	h.in("subscribed", tAlice, tLocal)
	long := "x" + strings.Repeat("é", 200<<10) // 2-byte runes, odd offset
	h.p.Offer(h.w, &stanza.Presence{Type: "available", From: tAliceR, To: tLocal, Status: long})
	j := <-h.p.jobs
	if n := len(j.pr.Status); n > presenceMaxStatus || n < presenceMaxStatus-3 || !utf8.ValidString(j.pr.Status) {
		t.Fatalf("queued status of %d bytes (valid %v)", n, utf8.ValidString(j.pr.Status))
	}
	h.p.handle(&j)
	if st := h.p.Lookup(tAlice).Resources[0].Status; len(st) > presenceMaxStatus {
		t.Errorf("tracked status of %d bytes", len(st))
	}
	if evs := h.takeEvents(); len(evs) != 1 || len(evs[0].Status) > presenceMaxStatus {
		t.Errorf("event status too long")
	}
	for i, c := range []struct{ in, want string }{
		{"abc", "abc"}, {"", ""}, {strings.Repeat("a", presenceMaxStatus), strings.Repeat("a", presenceMaxStatus)},
		{strings.Repeat("a", presenceMaxStatus-1) + "€", strings.Repeat("a", presenceMaxStatus-1)},
		{strings.Repeat("a", presenceMaxStatus-3) + "€", strings.Repeat("a", presenceMaxStatus-3) + "€"},
	} {
		if got := truncateUTF8(c.in, presenceMaxStatus); got != c.want {
			t.Errorf("%d: %d bytes, want %d", i, len(got), len(c.want))
		}
	}
}

// What an outside JID sends repeatedly is logged at warn at most once per
// second, never once per stanza.
func TestPresenceWarnSampled(t *testing.T) {
	var logs bytes.Buffer
	p, _ := testService(t, stanza.ModeComponent, "auto", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	p.emit = func(*stanza.Event) {}
	p.st.setLimits(storeLimits{perContact: 1, perDomain: 10, total: 10})
	p.lim = presenceLimits{contacts: 1, resources: 1, entries: 1}
	w := &presWriter{}
	for i := range 200 {
		p.handle(&presJob{w: w, pr: stanza.Presence{Type: "subscribe", From: "eve@evil.example", To: fmt.Sprintf("n%d@%s", i, tDomain)}})
		p.handle(&presJob{w: w, pr: stanza.Presence{Type: "subscribed", From: "eve@evil.example", To: fmt.Sprintf("n%d@%s", i, tDomain)}})
		p.handle(&presJob{w: w, pr: stanza.Presence{Type: "available", From: fmt.Sprintf("eve@evil.example/%d", i), To: "n0@" + tDomain}})
		p.Sent(&stanza.Info{Kind: "presence", PresenceType: "subscribed", From: tLocal, To: tAlice})
	}
	if n := strings.Count(logs.String(), "\n"); n > 4 {
		t.Errorf("%d log lines at info and above for 800 stanzas:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "eve@") {
		t.Errorf("a JID above debug: %s", logs.String())
	}
}

// Subscribing and unsubscribing in a loop costs store writes each time
// without ever reaching a cap: new subscriptions are bounded per contact
// domain per minute, refused past it with unsubscribed.
func TestPresenceSubscribeCycleRate(t *testing.T) {
	h := newPresHarness(t, "auto")
	now := time.Unix(1_000_000, 0)
	h.p.now = func() time.Time { return now }
	h.in("subscribe", tAlice, tLocal) // another domain, unaffected
	w0 := h.p.st.writeCount()
	for range 2 * presenceSubscribeRate {
		h.in("subscribe", "eve@evil.example", tLocal)
		h.in("unsubscribe", "eve@evil.example", tLocal)
	}
	// each accepted cycle: subscriber added and removed (+ one pending
	// subscription the first time)
	if d := h.p.st.writeCount() - w0; d > 2*presenceSubscribeRate+1 {
		t.Errorf("%d store writes", d)
	}
	if v := limited(h.p, "subscribe_rate"); v != presenceSubscribeRate {
		t.Errorf("limited %v", v)
	}
	h.w.take()
	h.inP(stanza.Presence{Type: "subscribe", From: "bob@evil.example", To: tLocal, ID: "r1"})
	h.expectWritten("<presence from='notices@gw.example.org' to='bob@evil.example' type='unsubscribed' id='r1'/>")
	// a known subscriber is answered as before
	h.in("subscribe", tAlice, tLocal)
	if got := h.w.take(); !strings.Contains(got, "type='subscribed'") {
		t.Errorf("known subscriber: %s", got)
	}
	// the next minute has room again
	now = now.Add(time.Minute)
	h.in("subscribe", "bob@evil.example", tLocal)
	if !h.subscriber(tLocal, "bob@evil.example") {
		t.Error("refused in the next minute")
	}
}
