package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/integration/harness"
)

// The hostile-input table: classes of outbound items and inbound stanzas,
// each with the outcome the gateway promises, run on a real Prosody and
// RabbitMQ and printed as a table. Outbound: an item is either
// dead-lettered with a given x-xmppgw-error reason, or delivered exactly,
// and the good items around it always arrive. Inbound: a message becomes
// an event with exact fields, or its sender gets an error with a given
// condition. The expected outcomes are the contract's, not today's
// behaviour: rows fail until the gateway keeps them.

// hostileItem is one outbound class.
type hostileItem struct {
	name string
	body []byte
	// want is "dead:<reason>" (alternatives separated by |, a prefix
	// ending in * matches any reason starting with it) or
	// "delivered:<exact body>".
	want string
}

func raw(t *testing.T, target, inner string) []byte {
	return mustJSON(t, outItem{Stanza: fmt.Sprintf("<message to='%s' type='chat'>%s</message>", target, inner)})
}

func hostileItems(t *testing.T, to, domain string) []hostileItem {
	j := func(s string) []byte { return []byte(s) }
	text := func(s string) []byte { return mustJSON(t, outItem{Target: to, Text: s}) }
	deep := strings.Repeat("<x xmlns='urn:x'>", 1000) + strings.Repeat("</x>", 1000)
	jsonDeep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	bigNumber := "1" + strings.Repeat("0", 1000)
	return []hostileItem{
		{"raw: element <x:/> (stray colon)", raw(t, to, "<body>b</body><x:/>"), "dead:bad_stanza"},
		{"raw: element <:x/>", raw(t, to, "<body>b</body><:x/>"), "dead:bad_stanza"},
		{"raw: attribute y:='1'", raw(t, to, "<body>b</body><x xmlns='urn:x' y:='1'/>"), "dead:bad_stanza"},
		{"raw: attribute :from", mustJSON(t, outItem{Stanza: fmt.Sprintf("<message to='%s' :from='x@%s'><body>b</body></message>", to, domain)}), "dead:bad_stanza"},
		{"raw: two prefixes bound to one URI", raw(t, to, "<body>b</body><x xmlns='urn:x' xmlns:a='urn:u' xmlns:b='urn:u' a:z='1' b:z='2'/>"), "dead:bad_stanza"},
		{"raw: default ns = XML namespace URI", raw(t, to, "<body>b</body><x xmlns='http://www.w3.org/XML/1998/namespace'/>"), "dead:bad_stanza"},
		{"raw: prefix bound to xmlns URI", raw(t, to, "<body>b</body><x xmlns='urn:x' xmlns:p='http://www.w3.org/2000/xmlns/'/>"), "dead:bad_stanza"},
		{"raw: xml prefix rebound", raw(t, to, "<body>b</body><x xmlns='urn:x' xmlns:xml='urn:other'/>"), "dead:bad_stanza"},
		{"raw: unbound prefix", raw(t, to, "<body>b</body><p:x/>"), "dead:bad_stanza"},
		{"raw: nesting 1000 deep", raw(t, to, "<body>b</body>"+deep), "dead:bad_stanza|stanza_too_large"},
		{"raw: entity reference &foo;", raw(t, to, "<body>&foo;</body>"), "dead:bad_stanza"},
		{"raw: billion laughs DOCTYPE", mustJSON(t, outItem{Stanza: `<!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` +
			fmt.Sprintf("<message to='%s'><body>&b;</body></message>", to)}), "dead:bad_stanza"},
		{"raw: processing instruction", raw(t, to, "<body>b</body><?evil x?>"), "dead:bad_stanza"},
		{"raw: comment (dropped or refused)", raw(t, to, "<body>comment<!-- c --></body>"), "dead:bad_stanza|delivered:comment"},
		{"raw: </stream:stream> inside", raw(t, to, "<body>b</body></stream:stream><stream:stream>"), "dead:bad_stanza"},
		{"raw: trailing second stanza", mustJSON(t, outItem{Stanza: fmt.Sprintf("<message to='%s'><body>a</body></message><message to='%s'><body>b</body></message>", to, to)}), "dead:bad_stanza"},
		{"raw: <iq/> instead of message", mustJSON(t, outItem{Stanza: fmt.Sprintf("<iq type='set' to='%s'><query xmlns='jabber:iq:roster'/></iq>", to)}), "dead:bad_stanza"},
		{"raw: from outside the domain", mustJSON(t, outItem{Stanza: fmt.Sprintf("<message to='%s' from='evil@example.net'><body>b</body></message>", to)}), "dead:forbidden_from|bad_stanza"},
		{"raw: CDATA and escapes kept", raw(t, to, "<body>a<![CDATA[<&>]]>&amp;&#x41;</body>"), "delivered:a<&>&A"},
		{"json: from outside the domain", mustJSON(t, outItem{Target: to, Text: "b", From: "evil@example.net"}), "dead:forbidden_from"},
		{"text: 10 MiB body", text(strings.Repeat("x", 10<<20)), "dead:text_too_long"},
		{"text: 65536 × '&' (×5 when escaped)", text(strings.Repeat("&", 65536)), "dead:stanza_too_large"},
		{"text: 65536 × 'a' (at the limit)", text(strings.Repeat("a", 65536)), "delivered:" + strings.Repeat("a", 65536)},
		// The gateway writes CR as &#xD;; Prosody re-serialises it raw to
		// the client, whose parser turns it into LF (XML end-of-line
		// handling): what a client can get is LF.
		{"text: CR, LF and tab (CR arrives as LF)", text("a\r\nb\tc\rd"), "delivered:a\nb\tc\nd"},
		{"text: markup and ]]>", text(`<b>&amp;</b> ]]> '"`), `delivered:<b>&amp;</b> ]]> '"`},
		{"json: NUL \\u0000", j(fmt.Sprintf(`{"target":%q,"text":"a\u0000b"}`, to)), "dead:invalid_xml_char"},
		{"json: lone surrogate \\ud800", j(fmt.Sprintf(`{"target":%q,"text":"a\ud800b"}`, to)), "dead:invalid_*"},
		{"json: U+FFFE noncharacter", text("a\uFFFEb"), "dead:invalid_xml_char"},
		{"json: control character U+0001", text("a\u0001b"), "dead:invalid_xml_char"},
		{"json: duplicate keys", j(fmt.Sprintf(`{"target":%q,"text":"one","text":"two"}`, to)), "dead:invalid_json|bad_field"},
		{"body: invalid UTF-8", j(fmt.Sprintf(`{"target":%q,"text":"a`, to) + "\xff\xfe" + `b"}`), "dead:invalid_utf8"},
		{"body: not JSON", j("<message/>"), "dead:invalid_json"},
		{"body: JSON array", j(`[1,2]`), "dead:invalid_json"},
		{"json: huge number in payload", j(fmt.Sprintf(`{"target":%q,"payload":%s}`, to, bigNumber)), "delivered:json=" + bigNumber},
		{"json: payload nested 20000 deep", j(fmt.Sprintf(`{"target":%q,"payload":%s}`, to, jsonDeep)), "dead:invalid_json|bad_field|text_too_long"},
		{"json: target is a number", j(`{"target":1e400,"text":"x"}`), "dead:bad_field|invalid_json"},
		{"json: bad JID a@b@c", text2(t, "a@b@c", "x"), "dead:bad_jid"},
		{"json: target with 2000-byte localpart", text2(t, strings.Repeat("u", 2000)+"@localhost", "x"), "dead:bad_jid"},
	}
}

func text2(t *testing.T, target, text string) []byte {
	return mustJSON(t, outItem{Target: target, Text: text})
}

// matches reports whether got ("dead:<reason>", "delivered:<body>",
// "error:<condition>", "event:<text>/<thread>", "check:<text>") is one of
// the outcomes want allows: alternatives separated by |, each "kind:value"
// or a bare value of the first alternative's kind; a value ending in * is a
// prefix.
func matches(want, got string) bool {
	kind := ""
	for _, a := range strings.Split(want, "|") {
		k, v, ok := strings.Cut(a, ":")
		if ok {
			kind = k
		} else {
			v = a
		}
		gk, gv, _ := strings.Cut(got, ":")
		if gk != kind {
			continue
		}
		if v == gv || strings.HasSuffix(v, "*") && strings.HasPrefix(gv, strings.TrimSuffix(v, "*")) {
			return true
		}
	}
	return false
}

// short renders an outcome for the table.
func short(s string) string {
	if k, v, ok := strings.Cut(s, ":"); ok && k == "delivered" && len(v) > 24 {
		return fmt.Sprintf("delivered:(%d bytes)", len(v))
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`, "|", " or ").Replace(s)
}

func TestHostileInputTable(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Users: map[string]string{"alice": "alice-pass", "mallory": "mallory-pass"},
	})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	mallory := harness.DialClient(t, p, "mallory", "mallory-pass")
	q := newQueues(t)
	proxy := harness.StartProxy(t, p.ComponentAddr)
	var (
		tapMu   sync.Mutex
		barrier []string // barrier ids seen on the wire, in order
	)
	pingID := regexp.MustCompile(`<iq type='get'[^>]* id='([^']+)'><ping xmlns='urn:xmpp:ping'/>`)
	proxy.Tap(harness.Up, func(b []byte) {
		tapMu.Lock()
		defer tapMu.Unlock()
		for _, m := range pingID.FindAllSubmatch(b, -1) {
			barrier = append(barrier, string(m[1]))
		}
	})
	cfg := componentConfig(t, proxy.Addr, p.ComponentDomain, p.Secret, q)
	gw := startGateway(t, cfg)
	to := p.JID("alice")

	type row struct{ dir, class, want, got string }
	var rows []row
	defer func() {
		var cells [][]string
		failed := 0
		for _, r := range rows {
			ok := "ok"
			if !matches(r.want, r.got) {
				ok = "FAIL"
				failed++
			}
			cells = append(cells, []string{r.dir, r.class, short(r.want), short(r.got), ok})
		}
		report(t, "hostile-input", fmt.Sprintf("Hostile input (%d classes, %d not as expected)", len(rows), failed),
			formatTable([]string{"dir", "class", "expected", "outcome", ""}, cells))
	}()

	// Alice's messages by stanza id.
	var (
		gotMu sync.Mutex
		got   = map[string]harness.Msg{}
	)
	go func() {
		for m := range alice.Messages() {
			gotMu.Lock()
			got[m.ID] = m
			gotMu.Unlock()
		}
	}()

	// --- outbound ---------------------------------------------------------
	items := hostileItems(t, to, p.ComponentDomain)
	q.declare(t)
	ch := harness.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 3*len(items)+10))
	pub := func(id string, body []byte) {
		if err := ch.Publish("", q.out, true, false, amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	var good []string
	for i, it := range items {
		g := fmt.Sprintf("good-%d", i)
		pub(g, mustJSON(t, outItem{Target: to, Text: g}))
		good = append(good, g)
		pub(fmt.Sprintf("hx-%d", i), it.body)
	}
	pub("good-last", mustJSON(t, outItem{Target: to, Text: "good-last"}))
	good = append(good, "good-last")
	for i := 0; i < 2*len(items)+1; i++ {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatal("broker nacked an item")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("no confirm")
		}
	}

	dead := map[string]string{}
	outcome := func(i int) string {
		id := fmt.Sprintf("hx-%d", i)
		if r, ok := dead[id]; ok {
			return "dead:" + r
		}
		gotMu.Lock()
		m, ok := got[id]
		gotMu.Unlock()
		if ok {
			if m.HasJSON && m.Body == "" {
				return "delivered:json=" + m.JSON
			}
			return "delivered:" + m.Body
		}
		return "missing"
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, d := range harness.Get(t, q.dead, 1000, 0) {
			r, _ := d.Headers["x-xmppgw-error"].(string)
			reason, _, _ := strings.Cut(r, ":")
			dead[d.MessageId] = strings.TrimSpace(reason)
		}
		pending := 0
		for i := range items {
			if outcome(i) == "missing" {
				pending++
			}
		}
		gotMu.Lock()
		for _, g := range good {
			if _, ok := got[g]; !ok {
				pending++
			}
		}
		gotMu.Unlock()
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, it := range items {
		rows = append(rows, row{"out", it.name, it.want, outcome(i)})
	}
	gotMu.Lock()
	missingGood := 0
	for _, g := range good {
		if _, ok := got[g]; !ok {
			missingGood++
		}
	}
	gotMu.Unlock()
	rows = append(rows, row{"out", "good items around them", "check:all delivered", fmt.Sprintf("check:%d of %d delivered", len(good)-missingGood, len(good))})
	if missingGood == 0 {
		rows[len(rows)-1].got = "check:all delivered"
	}
	reconnects := metricOrZero(t, gw, `xmppgw_reconnects_total{link="xmpp"}`)
	rows = append(rows, row{"out", "xmpp reconnects caused by the items", "check:0", fmt.Sprintf("check:%.0f", reconnects)})

	// --- inbound ------------------------------------------------------------
	comp := "notices@" + p.ComponentDomain
	ctx := context.Background()
	inbound := func(class, id, stanza, want string) {
		t.Helper()
		if err := mallory.SendRaw(ctx, stanza); err != nil {
			rows = append(rows, row{"in", class, want, "send failed: " + err.Error()})
			return
		}
		rows = append(rows, row{"in", class, want, inboundOutcome(t, mallory, q.in, id)})
	}
	inbound("plain message", "in-ok", fmt.Sprintf(`<message type='chat' id='in-ok' to='%s'><body>hi &lt;there&gt;</body><thread>t1</thread></message>`, comp),
		"event:hi <there>/t1")
	inbound("300 KiB body", "in-big", fmt.Sprintf(`<message type='chat' id='in-big' to='%s'><body>%s</body></message>`, comp, strings.Repeat("A", 300<<10)),
		"error:policy-violation")
	inbound("nesting 200 deep", "in-deep", fmt.Sprintf(`<message type='chat' id='in-deep' to='%s'><body>hi</body>%s</message>`, comp,
		strings.Repeat("<x xmlns='urn:x'>", 200)+strings.Repeat("</x>", 200)), "error:policy-violation")
	inbound("payload not JSON", "in-json", fmt.Sprintf(`<message type='chat' id='in-json' to='%s'><json xmlns='urn:xmpp:json:0'>{nope</json></message>`, comp),
		"error:not-acceptable")
	hugeID := "in-hugeid-" + strings.Repeat("i", 300<<10)
	inbound("300 KiB id attribute", hugeID, fmt.Sprintf(`<message type='chat' id='%s' to='%s'><body>x</body></message>`, hugeID, comp),
		"error:policy-violation")
	inbound("300 KiB thread", "in-thread", fmt.Sprintf(`<message type='chat' id='in-thread' to='%s'><body>x</body><thread>%s</thread></message>`, comp, strings.Repeat("t", 300<<10)),
		"error:policy-violation")
	inbound("2000-byte localpart in to", "in-to", fmt.Sprintf(`<message type='chat' id='in-to' to='%s@%s'><body>x</body></message>`, strings.Repeat("n", 2000), p.ComponentDomain),
		"error:jid-malformed|policy-violation")
	inbound("subject only, 300 KiB", "in-subject", fmt.Sprintf(`<message type='chat' id='in-subject' to='%s'><subject>%s</subject><body>x</body></message>`, comp, strings.Repeat("s", 300<<10)),
		"error:policy-violation")

	rows = append(rows, forgedBarrier(t, gw, proxy, alice, mallory, q, p, &tapMu, &barrier, &gotMu, got))
	rows = append(rows, subscriptionFlood(t, gw, mallory, p))
	rows = append(rows, idleHTTP(t, p, q))
	for _, r := range rows {
		if !matches(r.want, r.got) {
			t.Errorf("%s %s: want %s, got %s", r.dir, r.class, short(r.want), short(r.got))
		}
	}
}

// inboundOutcome waits for the event with id in the in queue
// ("event:<text>/<thread>") or an error to the sender
// ("error:<condition>"); "missing" after 10 s.
func inboundOutcome(t *testing.T, c *harness.Client, in, id string) string {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range harness.Get(t, in, 100, 0) {
			ev := decodeEvent(t, d)
			if ev.ID == id {
				return "event:" + ev.Text + "/" + ev.Thread
			}
		}
		select {
		case m := <-c.Messages():
			if m.ID == id && m.Type == "error" {
				return "error:" + m.Error
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "missing"
}

// forgedBarrier: the gateway's link to Prosody stops forwarding what the
// gateway writes, so neither the items nor the barrier ping behind them
// reach the server; mallory then answers the barrier herself, with the
// very ids the gateway uses (read off the wire). If the gateway took her
// answer it would acknowledge items the server never got, and they would
// be lost when the link is cut. Expected: nothing acknowledged, every item
// delivered after the reconnect.
func forgedBarrier(t *testing.T, gw *runningGateway, proxy *harness.Proxy, alice, mallory *harness.Client, q queues, p *harness.Prosody,
	tapMu *sync.Mutex, barrier *[]string, gotMu *sync.Mutex, got map[string]harness.Msg) struct{ dir, class, want, got string } {
	r := struct{ dir, class, want, got string }{"in", "forged barrier answers (ids read off the wire)", "check:0 acked early, 0 lost", ""}
	tapMu.Lock()
	n := len(*barrier)
	last := ""
	if n > 0 {
		last = (*barrier)[n-1]
	}
	tapMu.Unlock()
	if last == "" {
		r.got = "no barrier id seen on the wire"
		return r
	}
	sent := func() float64 { return metricOrZero(t, gw, `xmppgw_outbound_items_total{result="sent"}`) }
	before := sent()
	proxy.Stall(harness.Up)
	bodies, texts := numberedItems(t, "forged", p.JID("alice"), 50)
	publishItems(t, q.out, "forged-", bodies)
	// The ids that follow the last one seen, and the last one itself.
	prefix, seq := last, 0
	if i := strings.LastIndexByte(last, '-'); i >= 0 {
		prefix = last[:i+1]
		fmt.Sscan(last[i+1:], &seq)
	}
	ctx := context.Background()
	var forged strings.Builder
	for k := seq; k <= seq+200; k++ {
		for _, from := range []string{"", p.ComponentDomain} {
			fromAttr := ""
			if from != "" {
				fromAttr = fmt.Sprintf(" from='%s'", from) // the server overwrites it
			}
			fmt.Fprintf(&forged, "<iq type='result' to='%s'%s id='%s%d'/>", p.ComponentDomain, fromAttr, prefix, k)
		}
	}
	if err := mallory.SendRaw(ctx, forged.String()); err != nil {
		r.got = "send failed: " + err.Error()
		return r
	}
	// A marker behind them: once the server passes it on towards the
	// gateway, every forged answer went down the link before it. (A ping
	// round trip cannot tell: the gateway's reply is held with the rest of
	// what it writes.) The gateway reads them in order within a moment; an
	// acknowledgement they wrongly caused would follow as quickly, hence the
	// short grace before counting.
	marker := "forged-marker-" + q.out
	passed := make(chan struct{})
	tail := []byte{} // the end of the previous chunk (the marker may straddle two); nil once seen
	proxy.Tap(harness.Down, func(b []byte) {
		if tail == nil {
			return // seen already
		}
		seen := append(tail, b...)
		if bytes.Contains(seen, []byte(marker)) {
			tail = nil
			close(passed)
			return
		}
		tail = bytes.Clone(seen[max(0, len(seen)-len(marker)):])
	})
	if err := mallory.SendRaw(ctx, fmt.Sprintf(`<iq type='result' to='%s' id='%s'/>`, p.ComponentDomain, marker)); err != nil {
		r.got = "send failed: " + err.Error()
		return r
	}
	select {
	case <-passed:
	case <-time.After(30 * time.Second):
		r.got = "the marker behind the forged answers never reached the gateway's link"
		return r
	}
	proxy.Tap(harness.Down, nil)
	time.Sleep(200 * time.Millisecond)
	early := sent() - before
	proxy.Cut()
	waitFor(t, 60*time.Second, "gateway reconnected", gw.Ready)
	deadline := time.Now().Add(60 * time.Second)
	lost := 0
	for {
		lost = 0
		gotMu.Lock()
		for i := range texts {
			if _, ok := got[fmt.Sprintf("forged-%d", i)]; !ok {
				lost++
			}
		}
		gotMu.Unlock()
		if lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.got = fmt.Sprintf("check:%.0f acked early, %d lost", early, lost)
	return r
}

// subscriptionFlood: one JID asks 3,000 different localparts of the
// component for a subscription. Expected: the gateway stays ready and
// handles (answers or refuses, and counts) every request within 30 s.
// (Prosody turns an inbound "subscribed" into a roster push, so the
// answers are not observable as presences here; the count is.)
func subscriptionFlood(t *testing.T, gw *runningGateway, mallory *harness.Client, p *harness.Prosody) struct{ dir, class, want, got string } {
	// Prosody itself spends a core on this flood (it rewrites the
	// sender's roster for every subscription: about 50 a second here),
	// so the flood is sized for Prosody, not for the gateway, which
	// handles each in well under a millisecond.
	r := struct{ dir, class, want, got string }{"in", "subscription flood (600 localparts, one JID)", "check:ready, all 600 handled or dropped, ≤ 100 stored", ""}
	const n = 600
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "<presence type='subscribe' id='sub-%d' to='flood%d@%s'/>", i, i, p.ComponentDomain)
	}
	// Every presence handled or dropped (a full worker queue drops, by
	// design), each series summed over its labels.
	sum := func(prefix string) float64 {
		_, body := gw.get(t, "/metrics")
		var sum float64
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, prefix) {
				var v float64
				fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
				sum += v
			}
		}
		return sum
	}
	counted := func() float64 {
		return sum("xmppgw_presence_stanzas_total") + sum("xmppgw_presence_dropped_total")
	}
	base := counted()
	if err := mallory.SendRaw(context.Background(), b.String()); err != nil {
		r.got = "send failed: " + err.Error()
		return r
	}
	deadline := time.Now().Add(60 * time.Second)
	for counted()-base < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	stored := sum("xmppgw_presence_subscribers ")
	if c := counted() - base; gw.Ready() && c >= n && stored <= 100 {
		r.got = r.want
	} else {
		r.got = fmt.Sprintf("check:ready=%v, %.0f of %d handled or dropped in 60 s, %.0f stored", gw.Ready(), c, n, stored)
	}
	return r
}

// idleHTTP opens 10,000 idle TCP connections to the HTTP port of a
// gateway process (its own fd table: the test process holds the client
// ends, the machine's limit is 20,000 per process) and checks that
// /healthz still answers within 2 s, then how many idle connections the
// server closed within 15 s (it should have read and idle timeouts).
func idleHTTP(t *testing.T, p *harness.Prosody, q queues) struct{ dir, class, want, got string } {
	r := struct{ dir, class, want, got string }{"in", "10k idle HTTP connections", "check:healthz ok, idle closed", ""}
	gp := newGatewayProcess(t, p, queues{out: q.out + "-http", in: q.in, dead: q.dead})
	// The component is held by the in-process gateway: this one keeps
	// retrying, its HTTP server runs all the same.
	gp.start(t)
	waitFor(t, 30*time.Second, "gateway process HTTP", func() bool {
		c, err := net.Dial("tcp", gp.httpAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	const n = 10000
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", gp.httpAddr, 2*time.Second)
		if err != nil {
			r.got = fmt.Sprintf("check:only %d connections opened: %v", i, err)
			break
		}
		conns = append(conns, c)
	}
	began := time.Now()
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + gp.httpAddr + "/healthz")
	if err != nil {
		r.got = fmt.Sprintf("check:healthz failed with %d idle connections: %v", len(conns), err)
		return r
	}
	resp.Body.Close()
	took := time.Since(began)
	// How many idle connections did the server close within 15 s?
	closed := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					mu.Lock()
					closed++
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	if resp.StatusCode == 200 && closed > len(conns)*9/10 {
		r.got = r.want
	} else {
		r.got = fmt.Sprintf("check:healthz %d in %s; %d of %d idle closed in 15 s", resp.StatusCode, took.Round(time.Millisecond), closed, len(conns))
	}
	return r
}
