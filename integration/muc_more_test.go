package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// Group chats beyond Prosody in component mode: ejabberd's mod_muc, and the
// gateway in client mode.

// ejabberdMUC enables mod_muc on conference.localhost: rooms anyone may
// create, persistent so that they outlive their creator's presence and a
// restart of the server, with 100 messages of history.
const ejabberdMUC = `
  mod_muc:
    hosts:
      - conference.localhost
    access: all
    access_create: all
    access_persistent: all
    history_size: 100
    default_room_options:
      persistent: true
`

// mucQueues are newQueues plus the wait queue the gateway declares for
// parked groupchat items (<out>.wait), deleted when the test ends.
func mucQueues(t testing.TB) queues {
	q := newQueues(t)
	t.Cleanup(func() { harness.DeleteQueues(t, q.out+".wait") })
	return q
}

// mucItems are n groupchat items to room with the texts prefix 0 … prefix n-1.
func mucItems(t testing.TB, room, prefix string, n int) [][]byte {
	t.Helper()
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = mustJSON(t, map[string]any{"target": room, "type": "groupchat", "text": fmt.Sprintf("%s%d", prefix, i)})
	}
	return bodies
}

// checkInOrder reads n groupchat messages from occupant and checks they are
// prefix 0 … prefix n-1, in order.
func checkInOrder(t testing.TB, c *harness.Client, occupant, prefix string, n int, timeout time.Duration) {
	t.Helper()
	for i, m := range groupchats(t, c, occupant, n, timeout) {
		if want := fmt.Sprintf("%s%d", prefix, i); m.Body != want {
			t.Fatalf("room message %d: %q, want %q", i, m.Body, want)
		}
	}
}

// roomEventThenMarker has person (nick in room) say text in room, then
// "the end" as a marker, and checks that the next two events are exactly
// these two room messages, from room/nick, with room and nick. Both pass
// through the room after the gateway's own items: the room sends what it
// has in order, and events keep their order, so an echo of the gateway's
// items, the room's subject or its notices taken for an event would come
// before the marker. (A direct message is no marker on ejabberd: it does
// not pass through the room process and may overtake the room message.)
func roomEventThenMarker(t *testing.T, person *harness.Client, q queues, room, nick, text string) {
	t.Helper()
	ctx := context.Background()
	for _, body := range []string{text, "the end"} {
		if err := person.SendRaw(ctx, `<message to='`+room+`' type='groupchat'><body>`+body+`</body></message>`); err != nil {
			t.Fatal(err)
		}
	}
	got := harness.Get(t, q.in, 2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("%d events, want the two room messages", len(got))
	}
	for i, want := range []string{text, "the end"} {
		var ev struct{ Kind, From, Type, Room, Nick, Text string }
		if err := json.Unmarshal(got[i].Body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != "message" || ev.Type != "groupchat" || ev.Room != room || ev.Nick != nick || ev.From != room+"/"+nick || ev.Text != want {
			t.Fatalf("event %d: %s, want %s's room message %q", i, got[i].Body, nick, want)
		}
	}
}

// occupantJID checks that the room told its owner (a moderator, who sees
// real JIDs) that occupant is jid: the gateway joined as that address.
func occupantJID(t testing.TB, l *presenceLog, occupant, jid string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.seen {
		if p.From == occupant && p.Type == "" {
			if !strings.Contains(p.Raw, `jid="`+jid) {
				t.Fatalf("%s joined not as %s: %s", occupant, jid, p.Raw)
			}
			return
		}
	}
	t.Fatalf("no presence of %s", occupant)
}

// roomStates reads the rooms from the status page: JID → state, why.
func roomStates(t testing.TB, rg *runningGateway) map[string][2]string {
	t.Helper()
	code, body := rg.get(t, "/api/status")
	if code != 200 {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	var doc struct {
		Rooms []struct{ JID, Nick, State, Why string }
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	for _, r := range doc.Rooms {
		out[r.JID] = [2]string{r.State, r.Why}
	}
	return out
}

// TestMUCEjabberd: group chats on ejabberd 23.01's mod_muc, the gateway in
// component mode. alice creates the rooms; the gateway joins one, takes
// notices-2 in another where alice holds its nick, and fails in a
// members-only one; ejabberd answers its self-pings (no rejoin); 1,000
// items arrive in order; alice's room message is an event, the gateway's
// echoes are not; kicked, the gateway rejoins and its items flow again; a
// SIGHUP leaves one room and joins another; a room destroyed and a ban fail
// for good (items dead-lettered).
func TestMUCEjabberd(t *testing.T) {
	e := harness.StartEjabberdWith(t, harness.EjabberdOptions{Users: map[string]string{"alice": "alice-pass"}, Modules: ejabberdMUC})
	alice, err := harness.Dial(context.Background(), e.C2SAddr, e.JID("alice"), "alice-pass")
	if err != nil {
		t.Fatalf("client login on ejabberd: %v", err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	alicePres := watchPresences(alice)
	const (
		ops      = "ops@conference.localhost"
		conflict = "conflict@conference.localhost"
		private  = "private@conference.localhost"
		extra    = "extra@conference.localhost" // removed by a SIGHUP
		dev      = "dev@conference.localhost"   // added by it
	)
	joinRoom(t, alice, alicePres, ops, "alice", 0)
	joinRoom(t, alice, alicePres, conflict, "notices", 0)
	joinRoom(t, alice, alicePres, private, "alice", 0)
	joinRoom(t, alice, alicePres, extra, "alice", 0)
	joinRoom(t, alice, alicePres, dev, "alice", 0)
	membersOnly := `<iq type='set' to='` + private + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
		`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
		`<field var='muc#roomconfig_membersonly'><value>1</value></field></x></query></iq>`
	if reply, err := alice.SendIQ(context.Background(), membersOnly); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("making %s members-only: %v %s", private, err, reply)
	}

	q := mucQueues(t)
	base := fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
`, e.ComponentAddr, e.ComponentDomain, e.Secret) + restOfConfig(t, q) + `muc:
  self_ping: 5s
  rooms:
    - jid: ` + ops + `
    - jid: ` + conflict + `
    - jid: ` + private + `
`
	rg := startGateway(t, writeAndLoad(t, base+"    - jid: "+extra+"\n"))
	since := alicePres.wait(t, 0, ops+"/notices", "available", 30*time.Second)
	alicePres.wait(t, 0, conflict+"/notices-2", "available", 30*time.Second)
	alicePres.wait(t, 0, extra+"/notices", "available", 30*time.Second)
	occupantJID(t, alicePres, ops+"/notices", "notices@"+e.ComponentDomain)
	waitFor(t, 30*time.Second, "three rooms joined, the members-only one failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 3 && metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 1
	})
	rooms := roomStates(t, rg)
	if s := rooms[private]; s[0] != "failed" || !strings.Contains(s[1], "members-only") {
		t.Fatalf("status of %s: %q, want failed as members-only (all: %v)", private, s, rooms)
	}
	if s := rooms[ops]; s[0] != "joined" {
		t.Fatalf("status of %s: %q (all: %v)", ops, s, rooms)
	}

	// ejabberd answers the self-pings: the rooms are seen joined, and none
	// is rejoined for it.
	began := time.Now()
	waitFor(t, 60*time.Second, "self-pings answered", func() bool {
		return metricValue(t, rg, `xmppgw_muc_self_pings_total{result="joined"}`) >= 3
	})
	t.Logf("self-pings answered after %s", time.Since(began).Round(time.Millisecond))
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total") + metricValue(t, rg, `xmppgw_muc_self_pings_total{result="lost"}`); v != 0 {
		t.Fatalf("%v rejoins or lost self-pings in healthy rooms", v)
	}

	// 1,000 groupchat items arrive in order.
	const n = 1000
	began = time.Now()
	publishItems(t, q.out, "mucej-", mucItems(t, ops, "item ", n))
	checkInOrder(t, alice, ops+"/notices", "item ", n, 120*time.Second)
	t.Logf("%d groupchat items in the room in order after %s", n, time.Since(began).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "every item acknowledged", func() bool { return harness.QueueLen(t, q.out) == 0 })

	// alice's message in the room is an event; the room's echoes of the
	// 1,000 items are not.
	roomEventThenMarker(t, alice, q, ops, "alice", "hello notices")

	// Kicked: the gateway rejoins, and the room's items flow again.
	rejoins := metricValue(t, rg, "xmppgw_muc_rejoins_total")
	kick := `<iq type='set' to='` + ops + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='notices' role='none'><reason>test</reason></item></query></iq>`
	if reply, err := alice.SendIQ(context.Background(), kick); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("kick: %v %s", err, reply)
	}
	since = alicePres.wait(t, since, ops+"/notices", "unavailable", 30*time.Second)
	alicePres.wait(t, since, ops+"/notices", "available", 30*time.Second)
	waitFor(t, 30*time.Second, "the room joined again", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 3
	})
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total"); v != rejoins+1 {
		t.Fatalf("rejoins %v → %v, want one more", rejoins, v)
	}
	publishItems(t, q.out, "mucej-k-", mucItems(t, ops, "after the kick ", 10))
	checkInOrder(t, alice, ops+"/notices", "after the kick ", 10, 30*time.Second)
	waitFor(t, 30*time.Second, "every item acknowledged", func() bool { return harness.QueueLen(t, q.out) == 0 })
	if v := harness.QueueLen(t, q.dead); v != 0 {
		t.Fatalf("%d dead letters", v)
	}

	// SIGHUP: extra removed (left), dev added (joined).
	rg.Reload(writeAndLoad(t, base+"    - jid: "+dev+"\n"))
	alicePres.wait(t, 0, extra+"/notices", "unavailable", 30*time.Second)
	alicePres.wait(t, 0, dev+"/notices", "available", 30*time.Second)
	waitFor(t, 30*time.Second, "dev joined, extra gone", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 3 && metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 1
	})
	if rooms := roomStates(t, rg); rooms[dev][0] != "joined" || rooms[extra] != [2]string{} {
		t.Fatalf("rooms after the reload: %v", rooms)
	}

	// Destroyed by its owner: failed for good, never joined again (which
	// would create it again). ejabberd's destroy presence carries no
	// status 110, unlike Prosody's.
	destroy := `<iq type='set' to='` + conflict + `'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>done</reason></destroy></query></iq>`
	if reply, err := alice.SendIQ(context.Background(), destroy); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("destroy: %v %s", err, reply)
	}
	waitFor(t, 30*time.Second, "the destroyed room failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 2
	})
	if s := roomStates(t, rg)[conflict]; s[0] != "failed" || !strings.Contains(s[1], "destroyed") {
		t.Fatalf("status of %s: %q, want failed as destroyed", conflict, s)
	}

	// Banned: failed for good, not rejoined in a loop.
	ban := `<iq type='set' to='` + ops + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='notices@` + e.ComponentDomain + `' affiliation='outcast'/></query></iq>`
	if reply, err := alice.SendIQ(context.Background(), ban); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("ban: %v %s", err, reply)
	}
	waitFor(t, 30*time.Second, "the banned room failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 3
	})
	if s := roomStates(t, rg)[ops]; s[0] != "failed" || !strings.Contains(s[1], "banned") {
		t.Fatalf("status of %s: %q, want failed as banned", ops, s)
	}
	// Items to both are dead-lettered (not_joined) instead of sent into
	// nothing.
	publishItems(t, q.out, "mucej-f-", [][]byte{
		mustJSON(t, map[string]any{"target": conflict, "type": "groupchat", "text": "after the destroy"}),
		mustJSON(t, map[string]any{"target": ops, "type": "groupchat", "text": "after the ban"}),
	})
	for _, d := range harness.Drain(t, q.dead, 2, 30*time.Second) {
		if r := fmt.Sprint(d.Headers["x-xmppgw-error"]); !strings.HasPrefix(r, "not_joined") {
			t.Fatalf("dead letter %s: reason %q, want not_joined", d.Body, r)
		}
	}
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total"); v != rejoins+1 {
		t.Fatalf("rejoins %v, want %v (the kick's only)", v, rejoins+1)
	}
	if v := metricValue(t, rg, `xmppgw_muc_self_pings_total{result="lost"}`); v != 0 {
		t.Fatalf("%v self-pings lost", v)
	}
}

// TestMUCEjabberdRestart: ejabberd stops while the gateway is in a room
// and items for it keep coming; once ejabberd is back (the room restored
// from its spool, without occupants) the gateway rejoins and every item
// reaches the room, in order (alice reads them from its history).
func TestMUCEjabberdRestart(t *testing.T) {
	e := harness.StartEjabberdWith(t, harness.EjabberdOptions{Users: map[string]string{"alice": "alice-pass"}, Modules: ejabberdMUC})
	alice, err := harness.Dial(context.Background(), e.C2SAddr, e.JID("alice"), "alice-pass")
	if err != nil {
		t.Fatalf("client login on ejabberd: %v", err)
	}
	t.Cleanup(func() { _ = alice.Close() })
	alicePres := watchPresences(alice)
	const ops = "ops@conference.localhost"
	joinRoom(t, alice, alicePres, ops, "alice", 0)

	q := mucQueues(t)
	cfg := writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
`, e.ComponentAddr, e.ComponentDomain, e.Secret)+restOfConfig(t, q)+`muc:
  self_ping: 5s
  rooms:
    - jid: `+ops+`
`)
	rg := startGateway(t, cfg)
	alicePres.wait(t, 0, ops+"/notices", "available", 30*time.Second)
	waitFor(t, 30*time.Second, "the room joined", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 1
	})

	e.Stop(t)
	const n = 50
	publishItems(t, q.out, "mucej-r-", mucItems(t, ops, "restart ", n))
	began := time.Now()
	e.Start(t)
	waitFor(t, 90*time.Second, "every item sent", func() bool {
		return harness.QueueLen(t, q.out) == 0 && harness.QueueLen(t, q.out+".wait") == 0 &&
			metricValue(t, rg, `xmppgw_outbound_items_total{result="sent"}`) == n
	})
	t.Logf("%d items sent %s after ejabberd started again", n, time.Since(began).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "the room joined again", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 1
	})
	alice2, err := harness.Dial(context.Background(), e.C2SAddr, e.JID("alice"), "alice-pass")
	if err != nil {
		t.Fatalf("client login on ejabberd after its restart: %v", err)
	}
	t.Cleanup(func() { _ = alice2.Close() })
	alice2Pres := watchPresences(alice2)
	joinRoom(t, alice2, alice2Pres, ops, "alice", n)
	checkInOrder(t, alice2, ops+"/notices", "restart ", n, 60*time.Second)
	if v := harness.QueueLen(t, q.dead); v != 0 {
		t.Fatalf("%d dead letters", v)
	}
}

// TestMUCClientMode: the gateway as an account on Prosody joins a room on
// Prosody's MUC as that account, with the account's localpart as its nick;
// its groupchat items arrive in order, alice's room message is an event
// (room, nick), the gateway's echoes are not, and Prosody answers its
// self-pings.
func TestMUCClientMode(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass", "bot": "bot-pass"}, Host: prosodyMUC})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	alicePres := watchPresences(alice)
	const ops = "ops@conference.localhost"
	joinRoom(t, alice, alicePres, ops, "alice", 0)

	q := mucQueues(t)
	cfg := writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: client
  server: %s
  jid: bot@%s/gw
  password: bot-pass
  tls: disabled
  keepalive: 5s
`, p.C2SAddr, p.Domain)+restOfConfig(t, q)+`muc:
  self_ping: 5s
  rooms:
    - jid: `+ops+`
`)
	rg := startGateway(t, cfg)
	alicePres.wait(t, 0, ops+"/bot", "available", 30*time.Second)
	occupantJID(t, alicePres, ops+"/bot", "bot@"+p.Domain+"/gw")
	waitFor(t, 30*time.Second, "the room joined", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 1
	})
	if s := roomStates(t, rg)[ops]; s[0] != "joined" {
		t.Fatalf("status of %s: %q", ops, s)
	}

	const n = 200
	began := time.Now()
	publishItems(t, q.out, "mucc-", mucItems(t, ops, "item ", n))
	checkInOrder(t, alice, ops+"/bot", "item ", n, 60*time.Second)
	t.Logf("%d groupchat items in the room in order after %s", n, time.Since(began).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "every item acknowledged", func() bool { return harness.QueueLen(t, q.out) == 0 })

	roomEventThenMarker(t, alice, q, ops, "alice", "hello bot")

	// Prosody answers the self-pings sent from the account.
	waitFor(t, 60*time.Second, "a self-ping answered", func() bool {
		return metricValue(t, rg, `xmppgw_muc_self_pings_total{result="joined"}`) >= 1
	})
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total") + metricValue(t, rg, `xmppgw_muc_self_pings_total{result="lost"}`); v != 0 {
		t.Fatalf("%v rejoins or lost self-pings", v)
	}
	if v := harness.QueueLen(t, q.dead); v != 0 {
		t.Fatalf("%d dead letters", v)
	}
}
