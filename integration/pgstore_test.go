package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// The presence store on PostgreSQL (presence.store: postgres://…), shared by
// the gateways of one component: a gateway that starts with nothing of its
// own knows every subscriber that another gateway recorded.

// TestPGStoreTakeover: alice subscribes through one gateway; it stops; a
// second gateway, a new process state with no file of its own but the same
// database, sends alice available presence when it starts and answers her
// probe available — never unsubscribed, which would cancel her
// subscription.
func TestPGStoreTakeover(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	q := newQueues(t)
	store := harness.PGSchemaURL(t)
	cfg := gatewayConfig(t, p, q)
	cfg.Presence.Status = "first"
	cfg.Presence.Store = store
	first := startGateway(t, cfg)
	gw := "notices@" + p.ComponentDomain
	alice := dialInterested(t, p, "alice", "alice-pass")

	subscribeAndApprove(t, alice, gw)
	waitOnline(t, first, p.JID("alice"), true)
	waitFor(t, presenceWait, "alice stored as a subscriber, her approval stored", func() bool {
		return harness.PGInt(t, store, `SELECT count(*) FROM xmppgw_subscribers`) == 1 &&
			harness.PGInt(t, store, `SELECT count(*) FROM xmppgw_subscriptions WHERE state = 'approved'`) == 1
	})
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, alice, "unavailable at stop", from(gw, "unavailable"))

	// A second gateway: a fresh config (its own temporary directories),
	// a new Gateway, the same database.
	cfg2 := gatewayConfig(t, p, q)
	cfg2.Presence.Status = "second"
	cfg2.Presence.Store = store
	second := startGateway(t, cfg2)
	notUnsubscribed := func(what string, match func(harness.Presence) bool) harness.Presence {
		t.Helper()
		return waitPresence(t, alice, what, func(pr harness.Presence) bool {
			if from(gw, "unsubscribed")(pr) {
				t.Fatalf("the second gateway said unsubscribed: %s", pr.Raw)
			}
			return match(pr)
		})
	}
	av := notUnsubscribed("available presence at the second gateway's start", from(gw, ""))
	if av.Status != "second" {
		t.Errorf("status %q, want the second gateway's", av.Status)
	}
	// it probed alice (it knows her approval): her presence is known
	waitOnline(t, second, p.JID("alice"), true)

	sendRaw(t, alice, "<presence type='probe' to='"+gw+"' id='probe-2'/>")
	ans := notUnsubscribed("the answer to alice's probe", func(pr harness.Presence) bool {
		return from(gw, "")(pr) && pr.To == alice.JID.String()
	})
	if ans.Status != "second" {
		t.Errorf("probe answer status %q", ans.Status)
	}
	if v := metricValue(t, second, "xmppgw_presence_subscribers"); v != 1 {
		t.Errorf("xmppgw_presence_subscribers %v on the second gateway, want 1", v)
	}
	// alice's roster still holds a subscription both ways
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := alice.SendIQ(ctx, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reply, "subscription='both'") && !strings.Contains(reply, `subscription="both"`) {
		t.Errorf("alice's roster after the takeover: %s", reply)
	}
}

// TestPGStoreOutage: the real gateway with its store behind a proxy that
// drops PostgreSQL. While the database is away alice (a subscriber) has her
// probe answered available, bob's subscribe waits unanswered; once it is
// back bob is approved and stored. Neither ever gets unsubscribed.
func TestPGStoreOutage(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass", "bob": "bob-pass"}})
	q := newQueues(t)
	store := harness.PGSchemaURL(t)
	proxy := harness.StartProxy(t, "127.0.0.1:5432")
	cfg := gatewayConfig(t, p, q)
	cfg.Presence.Store = strings.Replace(store, "127.0.0.1:5432", proxy.Addr, 1)
	rg := startGateway(t, cfg)
	gw := "notices@" + p.ComponentDomain
	alice := dialInterested(t, p, "alice", "alice-pass")
	bob := dialInterested(t, p, "bob", "bob-pass")
	never := func(c *harness.Client, what string, match func(harness.Presence) bool) harness.Presence {
		t.Helper()
		return waitPresence(t, c, what, func(pr harness.Presence) bool {
			if from(gw, "unsubscribed")(pr) {
				t.Fatalf("unsubscribed from the gateway: %s", pr.Raw)
			}
			return match(pr)
		})
	}
	subscribeAndApprove(t, alice, gw)
	waitOnline(t, rg, p.JID("alice"), true)

	// PostgreSQL goes away; bob's subscribe is the change that finds it
	// gone (alice's probe is answered from memory, whichever comes first)
	proxy.SetDown(true)
	sendRaw(t, bob, "<presence type='subscribe' to='"+gw+"' id='bob-sub'/>")
	sendRaw(t, alice, "<presence type='probe' to='"+gw+"' id='alice-probe'/>")
	never(alice, "the answer to alice's probe while PostgreSQL is away", func(pr harness.Presence) bool {
		return from(gw, "")(pr) && pr.To == alice.JID.String()
	})
	sendRaw(t, bob, "<presence type='probe' to='"+gw+"' id='bob-probe'/>")
	if n := harness.PGInt(t, store, `SELECT count(*) FROM xmppgw_subscribers`); n != 1 {
		t.Fatalf("%d subscribers stored while the gateway cannot reach PostgreSQL", n)
	}

	proxy.SetDown(false)
	// bob's first answer from the gateway: subscribed (his probe, sent
	// while the store was away, got none, never unsubscribed)
	never(bob, "bob approved once PostgreSQL is back", from(gw, "subscribed"))
	waitFor(t, presenceWait, "bob stored", func() bool {
		return harness.PGInt(t, store, `SELECT count(*) FROM xmppgw_subscribers`) == 2
	})
	waitFor(t, presenceWait, "two subscribers counted", func() bool {
		return metricValue(t, rg, "xmppgw_presence_subscribers") == 2
	})
}
