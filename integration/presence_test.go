package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// Presence and subscriptions with a real client on a real Prosody: the
// component keeps its own roster in the store.

const presenceWait = 15 * time.Second

// waitPresence returns the first presence c receives that match accepts,
// skipping (and logging) others.
func waitPresence(t *testing.T, c *harness.Client, what string, match func(harness.Presence) bool) harness.Presence {
	t.Helper()
	deadline := time.After(presenceWait)
	for {
		select {
		case p, ok := <-c.Presences():
			if !ok {
				t.Fatalf("stream ended waiting for %s: %v", what, c.Err())
			}
			if match(p) {
				return p
			}
			t.Logf("skipped presence: %s", p.Raw)
		case <-deadline:
			t.Fatalf("no %s within %s", what, presenceWait)
		}
	}
}

// from matches a presence from jid of type typ ("" = available).
func from(jid, typ string) func(harness.Presence) bool {
	return func(p harness.Presence) bool {
		return p.Type == typ && strings.EqualFold(p.From, jid)
	}
}

func sendRaw(t *testing.T, c *harness.Client, raw string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.SendRaw(ctx, raw); err != nil {
		t.Fatal(err)
	}
}

// inEvent is an inbound event as workers read it.
type inEvent struct {
	Kind, ID, From, To, Type, Show, Status string
}

// waitEvent returns the first event in queue that match accepts, skipping
// others.
func waitEvent(t *testing.T, queue, what string, match func(inEvent) bool) inEvent {
	t.Helper()
	deadline := time.Now().Add(presenceWait)
	for time.Now().Before(deadline) {
		for _, d := range harness.Get(t, queue, 1, time.Second) {
			var ev inEvent
			if err := json.Unmarshal(d.Body, &ev); err != nil {
				t.Fatalf("event is not JSON: %v: %s", err, d.Body)
			}
			if d.Type != ev.Kind {
				t.Errorf("AMQP type %q, event kind %q", d.Type, ev.Kind)
			}
			if match(ev) {
				return ev
			}
			t.Logf("skipped event: %s", d.Body)
		}
	}
	t.Fatalf("no %s in %s within %s", what, queue, presenceWait)
	return inEvent{}
}

// presenceOf asks the gateway's endpoint about jid.
func presenceOf(t *testing.T, rg *runningGateway, jid string) (online bool, body string) {
	t.Helper()
	code, body := rg.get(t, "/v1/presence/"+jid)
	if code != 200 {
		t.Fatalf("/v1/presence/%s: %d %s", jid, code, body)
	}
	var ans struct {
		JID       string `json:"jid"`
		Online    bool   `json:"online"`
		Resources []struct {
			Resource, Show, Status string
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("/v1/presence: %v: %s", err, body)
	}
	return ans.Online, body
}

func waitOnline(t *testing.T, rg *runningGateway, jid string, want bool) {
	t.Helper()
	waitFor(t, presenceWait, jid+" online="+map[bool]string{true: "true", false: "false"}[want], func() bool {
		on, _ := presenceOf(t, rg, jid)
		return on == want
	})
}

// dialInterested logs user in and requests the roster: Prosody delivers
// subscription approvals and cancellations only to "interested" resources,
// those that requested the roster (RFC 6121 §3.1.6).
func dialInterested(t *testing.T, p *harness.Prosody, user, pass string) *harness.Client {
	t.Helper()
	c := harness.DialClient(t, p, user, pass)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := c.SendIQ(ctx, "<iq type='get'><query xmlns='jabber:iq:roster'/></iq>")
	if err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("roster get: %v %s", err, reply)
	}
	return c
}

// subscribeAndApprove makes alice subscribe to notices (auto mode) and
// approve the gateway's subscription back.
func subscribeAndApprove(t *testing.T, alice *harness.Client, gw string) {
	t.Helper()
	sendRaw(t, alice, "<presence type='subscribe' to='"+gw+"'/>")
	waitPresence(t, alice, "subscribed", from(gw, "subscribed"))
	waitPresence(t, alice, "subscribe back", from(gw, "subscribe"))
	sendRaw(t, alice, "<presence type='subscribed' to='"+gw+"'/>")
}

func TestPresenceAutoSubscribeRestartProbeUnsubscribe(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	q := newQueues(t)
	cfg := gatewayConfig(t, p, q)
	cfg.Presence.Status = "at your service"
	rg := startGateway(t, cfg)
	gw := "notices@" + p.ComponentDomain
	aliceBare := p.JID("alice")
	alice := dialInterested(t, p, "alice", "alice-pass")

	// subscribe → subscribed, available with the status, subscribe back
	sendRaw(t, alice, "<presence type='subscribe' to='"+gw+"'/>")
	waitPresence(t, alice, "subscribed", from(gw, "subscribed"))
	av := waitPresence(t, alice, "available presence", from(gw, ""))
	if av.Status != "at your service" {
		t.Errorf("status %q, want %q", av.Status, "at your service")
	}
	waitPresence(t, alice, "subscribe back", from(gw, "subscribe"))
	if v := metricValue(t, rg, "xmppgw_presence_subscribers"); v != 1 {
		t.Errorf("xmppgw_presence_subscribers %v, want 1", v)
	}

	// alice approves: the gateway learns her presence
	sendRaw(t, alice, "<presence type='subscribed' to='"+gw+"'/>")
	waitOnline(t, rg, aliceBare, true)
	ev := waitEvent(t, q.in, "available presence event", func(ev inEvent) bool {
		return ev.Kind == "presence" && ev.Type == "available"
	})
	if ev.From != alice.JID.String() || !strings.EqualFold(ev.To, gw) {
		t.Errorf("presence event from %q to %q, want %q to %q", ev.From, ev.To, alice.JID, gw)
	}

	// a probe is answered with available presence
	sendRaw(t, alice, "<presence type='probe' to='"+gw+"'/>")
	// (the answer goes to the full JID that probed, unlike the answer to the
	// probe Prosody sent from alice's bare JID when she approved)
	ans := waitPresence(t, alice, "answer to the probe", func(pr harness.Presence) bool {
		return from(gw, "")(pr) && pr.To == alice.JID.String()
	})
	if ans.Status != "at your service" {
		t.Errorf("probe answer status %q", ans.Status)
	}

	// graceful stop → unavailable; start again on the same store → available
	if err := rg.stop(t); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, alice, "unavailable at stop", from(gw, "unavailable"))
	rg = startGateway(t, cfg)
	av = waitPresence(t, alice, "available at start", from(gw, ""))
	if av.Status != "at your service" {
		t.Errorf("status after restart %q", av.Status)
	}
	// and the new gateway probed alice
	waitOnline(t, rg, aliceBare, true)

	// alice cancels our subscription to her: her presence is forgotten
	sendRaw(t, alice, "<presence type='unsubscribed' to='"+gw+"'/>")
	waitOnline(t, rg, aliceBare, false)
	waitEvent(t, q.in, "unavailable presence event", func(ev inEvent) bool {
		return ev.Kind == "presence" && ev.Type == "unavailable" && ev.From == alice.JID.String()
	})

	// alice unsubscribes from notices: unavailable, and the subscriber is gone
	sendRaw(t, alice, "<presence type='unsubscribe' to='"+gw+"'/>")
	waitPresence(t, alice, "unavailable after unsubscribe", from(gw, "unavailable"))
	waitFor(t, presenceWait, "no subscribers", func() bool {
		return metricValue(t, rg, "xmppgw_presence_subscribers") == 0
	})
	// nothing announces notices to alice any more: a restart is silent
	if err := rg.stop(t); err != nil {
		t.Fatal(err)
	}
	rg = startGateway(t, cfg)
	sendRaw(t, alice, "<presence type='probe' to='"+gw+"'/>")
	// The probe of a non-subscriber is answered unsubscribed, which Prosody
	// absorbs (alice has no subscription left); a ping proves the stream
	// went past it without an available presence from notices.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := alice.SendIQ(ctx, "<iq type='get' to='"+p.Domain+"'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for {
		select {
		case pr := <-alice.Presences():
			if from(gw, "")(pr) {
				t.Fatalf("available presence after unsubscribe: %s", pr.Raw)
			}
			continue
		default:
		}
		break
	}
}

func TestPresenceEndpointFollowsContact(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	q := newQueues(t)
	rg := startGateway(t, gatewayConfig(t, p, q))
	gw := "notices@" + p.ComponentDomain
	aliceBare := p.JID("alice")

	if on, body := presenceOf(t, rg, aliceBare); on {
		t.Fatalf("alice online before anything: %s", body)
	}
	alice := dialInterested(t, p, "alice", "alice-pass")
	subscribeAndApprove(t, alice, gw)
	waitOnline(t, rg, aliceBare, true)
	_, body := presenceOf(t, rg, aliceBare)
	if !strings.Contains(body, `"resource":"`+alice.JID.Resourcepart()+`"`) {
		t.Errorf("resource missing: %s", body)
	}

	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, rg, aliceBare, false)
	waitEvent(t, q.in, "unavailable event", func(ev inEvent) bool {
		return ev.Kind == "presence" && ev.Type == "unavailable" && ev.From == alice.JID.String()
	})

	alice2 := dialInterested(t, p, "alice", "alice-pass")
	waitOnline(t, rg, aliceBare, true)
	sendRaw(t, alice2, "<presence><show>dnd</show><status>busy</status></presence>")
	ev := waitEvent(t, q.in, "dnd event", func(ev inEvent) bool {
		return ev.Kind == "presence" && ev.Show == "dnd"
	})
	if ev.Status != "busy" || ev.From != alice2.JID.String() {
		t.Errorf("event %+v", ev)
	}

	for _, bad := range []string{"@", "a@b@c", "%40localhost"} {
		if code, body := rg.get(t, "/v1/presence/"+bad); code != 400 {
			t.Errorf("/v1/presence/%s: %d %s, want 400", bad, code, body)
		}
	}
}

func TestPresenceForwardRoundTrip(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	q := newQueues(t)
	cfg := gatewayConfig(t, p, q)
	cfg.Presence.Subscriptions = "forward"
	rg := startGateway(t, cfg)
	gw := "notices@" + p.ComponentDomain
	alice := dialInterested(t, p, "alice", "alice-pass")

	sendRaw(t, alice, "<presence type='subscribe' to='"+gw+"'/>")
	ev := waitEvent(t, q.in, "subscription event", func(ev inEvent) bool { return ev.Kind == "subscription" })
	if ev.Type != "subscribe" || !strings.EqualFold(ev.From, p.JID("alice")) || !strings.EqualFold(ev.To, gw) {
		t.Fatalf("subscription event %+v", ev)
	}

	// a worker approves through the outbound queue
	harness.PublishJSON(t, q.out, map[string]string{
		"kind": "presence", "type": "subscribed", "target": ev.From, "from": "notices",
	})
	// The gateway's available presence follows the store write that the
	// item triggered; it may overtake the item itself on the stream.
	var gotSubscribed, gotAvailable bool
	waitPresence(t, alice, "subscribed and available", func(pr harness.Presence) bool {
		gotSubscribed = gotSubscribed || from(gw, "subscribed")(pr)
		gotAvailable = gotAvailable || from(gw, "")(pr)
		return gotSubscribed && gotAvailable
	})
	waitFor(t, presenceWait, "one subscriber", func() bool {
		return metricValue(t, rg, "xmppgw_presence_subscribers") == 1
	})

	// unsubscribe is forwarded too, and takes effect at once
	sendRaw(t, alice, "<presence type='unsubscribe' to='"+gw+"'/>")
	ev = waitEvent(t, q.in, "unsubscribe event", func(ev inEvent) bool { return ev.Kind == "subscription" })
	if ev.Type != "unsubscribe" {
		t.Fatalf("subscription event %+v", ev)
	}
	waitFor(t, presenceWait, "no subscriber", func() bool {
		return metricValue(t, rg, "xmppgw_presence_subscribers") == 0
	})
}
