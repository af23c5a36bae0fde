package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// Group chats on a real Prosody: its MUC component (persistent, unlocked
// rooms with a long history) and a second MUC host whose rooms are
// members-only.

const prosodyMUC = `
Component "conference.localhost" "muc"
	modules_enabled = { "muc_mam" }
	muc_room_locking = false
	muc_room_default_persistent = true
	max_history_messages = 5000
	muc_room_default_history_length = 5000
Component "private.localhost" "muc"
	muc_room_locking = false
	muc_room_default_members_only = true
`

// presenceLog drains a client's presences (a client that is not read
// blocks its stream) and lets a test wait for one.
type presenceLog struct {
	mu   sync.Mutex
	seen []harness.Presence
	more chan struct{}
}

func watchPresences(c *harness.Client) *presenceLog {
	l := &presenceLog{more: make(chan struct{}, 1)}
	go func() {
		for p := range c.Presences() {
			l.mu.Lock()
			l.seen = append(l.seen, p)
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// wait waits for a presence from `from` (a full occupant JID) of type typ
// seen after index since, and returns the index after it.
func (l *presenceLog) wait(t testing.TB, since int, from, typ string, timeout time.Duration) int {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for i := since; i < len(l.seen); i++ {
			p := l.seen[i]
			if p.From == from && (p.Type == typ || typ == "available" && p.Type == "") {
				l.mu.Unlock()
				return i + 1
			}
		}
		n := len(l.seen)
		l.mu.Unlock()
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("no %s presence from %s within %s (%d presences seen since %d)", typ, from, timeout, n-since, since)
		}
	}
}

func (l *presenceLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// joinRoom makes c join room as nick (no history unless maxstanzas > 0)
// and waits for its self-presence.
func joinRoom(t testing.TB, c *harness.Client, l *presenceLog, room, nick string, history int) {
	t.Helper()
	since := l.len()
	h := "<history maxchars='0'/>"
	if history > 0 {
		h = fmt.Sprintf("<history maxstanzas='%d'/>", history)
	}
	if err := c.SendRaw(context.Background(), fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, room, nick, h)); err != nil {
		t.Fatal(err)
	}
	l.wait(t, since, room+"/"+nick, "available", 30*time.Second)
}

// groupchats reads n groupchat messages with a body from room/nick.
func groupchats(t testing.TB, c *harness.Client, from string, n int, timeout time.Duration) []harness.Msg {
	t.Helper()
	var out []harness.Msg
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-c.Messages():
			if m.Type == "groupchat" && m.From == from && m.Body != "" {
				out = append(out, m)
			}
		case <-deadline:
			t.Fatalf("%d of %d groupchat messages from %s within %s", len(out), n, from, timeout)
		}
	}
	return out
}

func TestMUCProsody(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}, Host: prosodyMUC})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	alicePres := watchPresences(alice)
	const (
		ops      = "ops@conference.localhost"
		conflict = "conflict@conference.localhost"
		private  = "private@private.localhost"
		dev      = "dev@conference.localhost"
		pw       = "pw@conference.localhost"
		pw2      = "pw2@conference.localhost"
	)
	// alice creates the rooms (owner of each); in one she takes the
	// gateway's nick first.
	joinRoom(t, alice, alicePres, ops, "alice", 0)
	joinRoom(t, alice, alicePres, conflict, "notices", 0)
	joinRoom(t, alice, alicePres, private, "alice", 0)
	// Two password-protected rooms: the gateway knows one's password.
	for _, room := range []string{pw, pw2} {
		joinRoom(t, alice, alicePres, room, "alice", 0)
		form := `<iq type='set' to='` + room + `'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>` +
			`<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>` +
			`<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>` +
			`<field var='muc#roomconfig_roomsecret'><value>s3cret</value></field></x></query></iq>`
		if reply, err := alice.SendIQ(context.Background(), form); err != nil || harness.IQType(reply) != "result" {
			t.Fatalf("password for %s: %v %s", room, err, reply)
		}
	}

	q := newQueues(t)
	base := fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
`, p.ComponentAddr, p.ComponentDomain, p.Secret) + restOfConfig(t, q)
	cfg := writeAndLoad(t, base+`muc:
  self_ping: 5s
  rooms:
    - jid: `+ops+`
    - jid: `+conflict+`
    - jid: `+private+`
    - jid: `+pw+`
      password: s3cret
    - jid: `+pw2+`
`)
	rg := startGateway(t, cfg)
	since := 0
	since = alicePres.wait(t, since, ops+"/notices", "available", 30*time.Second)
	alicePres.wait(t, 0, conflict+"/notices-2", "available", 30*time.Second)
	alicePres.wait(t, 0, pw+"/notices", "available", 30*time.Second)
	waitFor(t, 30*time.Second, "three rooms joined; the members-only one and the one without its password failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 3 && metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 2
	})
	_, status := rg.get(t, "/api/status")
	for _, want := range []string{`"jid":"` + pw2 + `","nick":"notices","state":"failed"`, "not-authorized", "registration-required"} {
		if !strings.Contains(status, want) {
			t.Errorf("/api/status lacks %q: %s", want, status)
		}
	}
	// Prosody answers the self-pings: both rooms are seen joined, and none
	// is rejoined for it.
	waitFor(t, 60*time.Second, "self-pings answered", func() bool {
		return metricValue(t, rg, `xmppgw_muc_self_pings_total{result="joined"}`) >= 2
	})
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total") + metricValue(t, rg, `xmppgw_muc_self_pings_total{result="lost"}`); v != 0 {
		t.Fatalf("%v rejoins or lost self-pings in healthy rooms", v)
	}

	// 1,000 groupchat items arrive in order.
	const n = 1000
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i], _ = json.Marshal(map[string]any{"target": ops, "type": "groupchat", "text": fmt.Sprintf("item %d", i)})
	}
	began := time.Now()
	publishItems(t, q.out, "muc-", bodies)
	published := time.Since(began)
	for i, m := range groupchats(t, alice, ops+"/notices", n, 120*time.Second) {
		if want := fmt.Sprintf("item %d", i); m.Body != want {
			t.Fatalf("message %d: %q, want %q", i, m.Body, want)
		}
	}
	t.Logf("%d groupchat items published in %s, all in the room in order after %s", n, published.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "every item acknowledged", func() bool { return harness.QueueLen(t, q.out) == 0 })

	// A person's message in the room is an event; the room's echoes of
	// the 1,000 items and its subject are not.
	if err := alice.SendRaw(context.Background(), `<message to='`+ops+`' type='groupchat' id='g1'><body>hello notices</body></message>`); err != nil {
		t.Fatal(err)
	}
	// A direct message after it marks the end: events keep their order, so
	// an echo taken for an event would come before one of these two.
	if err := alice.Send(context.Background(), "notices@"+p.ComponentDomain, "the end"); err != nil {
		t.Fatal(err)
	}
	got := harness.Get(t, q.in, 2, 30*time.Second)
	if len(got) != 2 || !strings.Contains(string(got[1].Body), `"text":"the end"`) {
		t.Fatalf("%d events, want alice's room message and then her direct one", len(got))
	}
	var ev struct{ Kind, ID, From, Type, Room, Nick, Text string }
	if err := json.Unmarshal(got[0].Body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "message" || ev.Type != "groupchat" || ev.Room != ops || ev.Nick != "alice" || ev.From != ops+"/alice" || ev.Text != "hello notices" {
		t.Fatalf("room event %s", got[0].Body)
	}

	// Markers from occupants: a groupchat item with receipt: true is
	// markable (no XEP-0184 request in a room); alice's displayed marker
	// quotes the id the room gave it, and becomes a receipt for ours.
	harness.PublishJSON(t, q.out, map[string]any{"target": ops, "type": "groupchat", "text": "read me", "id": "mk-1", "receipt": true})
	mk := groupchats(t, alice, ops+"/notices", 1, 30*time.Second)[0]
	if _, ok := childAttrs(t, mk.Raw, "urn:xmpp:chat-markers:0", "markable"); !ok {
		t.Fatalf("not markable: %s", mk.Raw)
	}
	if _, ok := childAttrs(t, mk.Raw, "urn:xmpp:receipts", "request"); ok {
		t.Fatalf("a receipt request in a room: %s", mk.Raw)
	}
	sid, ok := childAttrs(t, mk.Raw, "urn:xmpp:sid:0", "stanza-id")
	if !ok || sid["by"] != ops || sid["id"] == "" {
		t.Fatalf("no stanza-id from the room: %s", mk.Raw)
	}
	if err := alice.SendRaw(context.Background(), `<message to='`+ops+`' type='groupchat'><displayed xmlns='urn:xmpp:chat-markers:0' id='`+sid["id"]+`'/></message>`); err != nil {
		t.Fatal(err)
	}
	rc := harness.Get(t, q.in, 1, 30*time.Second)
	if len(rc) != 1 || !strings.Contains(string(rc[0].Body), `"kind":"receipt","id":"mk-1","from":"`+ops+`/alice"`) || !strings.Contains(string(rc[0].Body), `"status":"displayed"`) {
		t.Fatalf("want a displayed receipt for mk-1 from alice in the room, got %d events", len(rc))
	}

	// A groupchat item to a room that is not configured is dead-lettered.
	harness.PublishJSON(t, q.out, map[string]any{"target": "elsewhere@conference.localhost", "type": "groupchat", "text": "x"})
	dl := harness.Get(t, q.dead, 1, 30*time.Second)
	if len(dl) != 1 || !strings.HasPrefix(fmt.Sprint(dl[0].Headers["x-xmppgw-error"]), "not_joined") {
		t.Fatalf("dead letters %v", dl)
	}

	// Kicked: the gateway rejoins, and the room's items flow again.
	rejoins := metricValue(t, rg, "xmppgw_muc_rejoins_total")
	kick := `<iq type='set' to='` + ops + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='notices' role='none'><reason>test</reason></item></query></iq>`
	if reply, err := alice.SendIQ(context.Background(), kick); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("kick: %v %s", err, reply)
	}
	since = alicePres.wait(t, since, ops+"/notices", "unavailable", 30*time.Second)
	since = alicePres.wait(t, since, ops+"/notices", "available", 30*time.Second)
	if v := metricValue(t, rg, "xmppgw_muc_rejoins_total"); v != rejoins+1 {
		t.Fatalf("rejoins %v → %v, want one more", rejoins, v)
	}
	harness.PublishJSON(t, q.out, map[string]any{"target": ops, "type": "groupchat", "text": "after the kick"})
	groupchats(t, alice, ops+"/notices", 1, 30*time.Second)

	// SIGHUP: conflict removed (left), dev (which alice created) added
	// (joined).
	joinRoom(t, alice, alicePres, dev, "alice", 0)
	cfg2 := writeAndLoad(t, base+`muc:
  self_ping: 5s
  rooms:
    - jid: `+ops+`
    - jid: `+private+`
    - jid: `+dev+`
`)
	rg.Reload(cfg2)
	alicePres.wait(t, 0, conflict+"/notices-2", "unavailable", 30*time.Second)
	alicePres.wait(t, 0, dev+"/notices", "available", 30*time.Second)
	waitFor(t, 30*time.Second, "dev joined", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 2
	})

	// The server restarts while items are waiting: the gateway rejoins
	// and every item reaches the room (alice reads them from the room's
	// history after she is back).
	p.Stop(t)
	const m = 50
	more := make([][]byte, m)
	for i := range more {
		more[i], _ = json.Marshal(map[string]any{"target": ops, "type": "groupchat", "text": fmt.Sprintf("restart %d", i)})
	}
	publishItems(t, q.out, "muc-r-", more)
	p.Start(t)
	waitFor(t, 60*time.Second, "the items sent after the restart", func() bool { return harness.QueueLen(t, q.out) == 0 })
	waitFor(t, 30*time.Second, "the rooms joined again", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`) == 2
	})
	alice2 := harness.DialClient(t, p, "alice", "alice-pass")
	alice2Pres := watchPresences(alice2)
	joinRoom(t, alice2, alice2Pres, ops, "alice2", 5000)
	seen := map[string]bool{}
	deadline := time.After(60 * time.Second)
	for len(seen) < m {
		select {
		case msg := <-alice2.Messages():
			if msg.Type == "groupchat" && strings.HasPrefix(msg.Body, "restart ") {
				seen[msg.Body] = true
			}
		case <-deadline:
			t.Fatalf("%d of %d items sent across the restart are in the room", len(seen), m)
		}
	}

	// Destroyed by its owner: failed for good (joining would create it
	// again).
	destroy := `<iq type='set' to='` + dev + `'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>done</reason></destroy></query></iq>`
	if reply, err := alice2.SendIQ(context.Background(), destroy); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("destroy: %v %s", err, reply)
	}
	waitFor(t, 30*time.Second, "the destroyed room failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 2
	})

	// Banned: failed for good, and its items are dead-lettered rather
	// than rejoined in a loop.
	ban := `<iq type='set' to='` + ops + `'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='notices@` + p.ComponentDomain + `' affiliation='outcast'/></query></iq>`
	if reply, err := alice2.SendIQ(context.Background(), ban); err != nil || harness.IQType(reply) != "result" {
		t.Fatalf("ban: %v %s", err, reply)
	}
	waitFor(t, 30*time.Second, "the banned room failed", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="failed"}`) == 3
	})
	harness.PublishJSON(t, q.out, map[string]any{"target": ops, "type": "groupchat", "text": "after the ban"})
	deadline = time.After(30 * time.Second)
	for {
		d := harness.Get(t, q.dead, 1, time.Second)
		if len(d) == 1 && strings.HasPrefix(fmt.Sprint(d[0].Headers["x-xmppgw-error"]), "not_joined") {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the item to the room that banned the gateway was not dead-lettered")
		default:
		}
	}
}

// TestMUCParkedItems: a room the gateway cannot join yet (a MUC host where
// only local users create rooms) keeps its items waiting, parked in the wait
// queue, while items to other targets go out; once a person creates the
// room the gateway joins on its next try and the room's items arrive, all
// of them, in order.
func TestMUCParkedItems(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}, Host: `
Component "restricted.localhost" "muc"
	muc_room_locking = false
	restrict_room_creation = "local"
	max_history_messages = 100
	muc_room_default_history_length = 100
`})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	alicePres := watchPresences(alice)
	const room = "later@restricted.localhost"
	q := newQueues(t)
	cfg := writeAndLoad(t, fmt.Sprintf(`xmpp:
  mode: component
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
`, p.ComponentAddr, p.ComponentDomain, p.Secret)+restOfConfig(t, q)+`muc:
  rooms:
    - jid: `+room+`
`)
	rg := startGateway(t, cfg)
	waitFor(t, 30*time.Second, "the room refused for now", func() bool {
		return metricValue(t, rg, `xmppgw_muc_rooms{state="joining"}`) == 1
	})

	const n = 20
	var bodies [][]byte
	for i := range n {
		b, _ := json.Marshal(map[string]any{"target": room, "type": "groupchat", "text": fmt.Sprintf("waiting %d", i)})
		bodies = append(bodies, b)
		if i%4 == 0 { // other targets in between
			b, _ = json.Marshal(map[string]any{"target": alice.JID.Bare().String(), "text": fmt.Sprintf("direct %d", i)})
			bodies = append(bodies, b)
		}
	}
	publishItems(t, q.out, "park-", bodies)
	// The direct messages go out while the room still refuses the gateway.
	for i := 0; i < n; i += 4 {
		m := recv(t, alice, 60*time.Second)
		if want := fmt.Sprintf("direct %d", i); m.Body != want {
			t.Fatalf("got %q, want %q", m.Body, want)
		}
	}
	if v := metricValue(t, rg, `xmppgw_muc_rooms{state="joined"}`); v != 0 {
		t.Fatal("the room was joined before anyone created it")
	}
	waitFor(t, 30*time.Second, "the room's items parked", func() bool {
		return metricValue(t, rg, `xmppgw_outbound_items_total{result="parked"}`) >= n
	})
	if v := metricValue(t, rg, `xmppgw_outbound_items_total{result="dead_lettered"}`); v != 0 {
		t.Fatalf("%v items dead-lettered", v)
	}

	// alice creates the room; the gateway joins on its next try.
	joinRoom(t, alice, alicePres, room, "alice", 0)
	alicePres.wait(t, 0, room+"/notices", "available", 90*time.Second)
	for i, m := range groupchats(t, alice, room+"/notices", n, 60*time.Second) {
		if want := fmt.Sprintf("waiting %d", i); m.Body != want {
			t.Fatalf("room message %d: %q, want %q", i, m.Body, want)
		}
	}
	waitFor(t, 30*time.Second, "out and wait queues empty", func() bool {
		return harness.QueueLen(t, q.out) == 0 && harness.QueueLen(t, q.out+".wait") == 0
	})
	harness.DeleteQueues(t, q.out+".wait")
}
