package integration

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// Sizes of the server-list test: the first server is stopped after
// listFaultAt items arrived, with items still waiting; the last listHeld
// are published only once the gateway is on the second server.
const (
	listItems   = 3000
	listFaultAt = 800
	listHeld    = 500
)

// unionCollector counts the items received by several collectors (one per
// server: alice has an account on each).
type unionCollector []*collector

// seen reports how many times text arrived, over every collector.
func (u unionCollector) seen(text string) int {
	n := 0
	for _, c := range u {
		c.mu.Lock()
		n += c.seen[text]
		c.mu.Unlock()
	}
	return n
}

// count returns how many of texts arrived at least once, and how many
// arrived in all (duplicates included).
func (u unionCollector) count(texts []string) (distinct, total int) {
	for _, s := range texts {
		if n := u.seen(s); n > 0 {
			distinct++
			total += n
		}
	}
	return distinct, total
}

// statusServer is the XMPP server the status page says the gateway is on.
func statusServer(t *testing.T, gw *runningGateway) string {
	t.Helper()
	code, body := gw.get(t, "/api/status")
	if code != 200 {
		t.Fatalf("/api/status: %d %s", code, body)
	}
	var doc struct {
		XMPP struct {
			Server string `json:"server"`
		} `json:"xmpp"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/api/status: %v", err)
	}
	return doc.XMPP.Server
}

// TestServerListFailover: xmpp.server lists two Prosodys serving the same
// component (same domain and secret). The gateway is on the first; the
// first is stopped while items flow; the gateway fails over to the second
// and every item arrives (duplicates allowed, none lost).
func TestServerListFailover(t *testing.T) {
	opts := harness.ProsodyOptions{
		Secret: "list-" + strconv.FormatInt(time.Now().UnixNano(), 36), // one secret, both servers
		Users:  map[string]string{"alice": "alice-pass"},
	}
	p1 := harness.StartProsody(t, opts)
	p2 := harness.StartProsody(t, opts)
	if p1.ComponentDomain != p2.ComponentDomain || p1.Domain != p2.Domain {
		t.Fatalf("the two servers differ: %s/%s and %s/%s", p1.Domain, p1.ComponentDomain, p2.Domain, p2.ComponentDomain)
	}
	cols := unionCollector{collect(t, p1, "alice", "alice-pass"), collect(t, p2, "alice", "alice-pass")}
	waitFor(t, 20*time.Second, "alice online on both servers", func() bool {
		_, _, d1 := cols[0].counts()
		_, _, d2 := cols[1].counts()
		return d1 > 0 && d2 > 0
	})

	q := newQueues(t)
	q.declare(t)
	bodies, texts := numberedItems(t, "list", p1.JID("alice"), listItems)
	publishItems(t, q.out, "list-", bodies[:listItems-listHeld])

	cfg := componentConfig(t, p1.ComponentAddr+", "+p2.ComponentAddr, p1.ComponentDomain, opts.Secret, q)
	cfg.Outbound.Rate = 600 // items keep flowing while the first server goes
	cfg.AMQP.Prefetch = 100
	gw := startGateway(t, cfg)
	if s := statusServer(t, gw); s != p1.ComponentAddr {
		t.Errorf("status page: on %q, want the first server %s", s, p1.ComponentAddr)
	}
	waitFor(t, 60*time.Second, "items flowing through the first server", func() bool {
		d, _, _ := cols[0].counts()
		return d >= listFaultAt
	})
	reconnects := metricOrZero(t, gw, `xmppgw_reconnects_total{link="xmpp"}`)

	at := time.Now()
	p1.Stop(t)
	stopped := time.Since(at)
	if d, _ := cols.count(texts); d >= listItems-listHeld {
		t.Fatalf("all %d items were delivered before the first server stopped: the fault did not hit the flow", d)
	}
	waitFor(t, 60*time.Second, "the gateway on the second server", func() bool {
		return gw.Ready() && statusServer(t, gw) == p2.ComponentAddr
	})
	onSecond := time.Since(at)
	before, _, _ := cols[1].counts()
	waitFor(t, 60*time.Second, "items at the second server", func() bool {
		d, _, _ := cols[1].counts()
		return d > before
	})
	flowing := time.Since(at)
	publishItems(t, q.out, "list-held-", bodies[listItems-listHeld:])
	// The first server comes back (its maintenance is over): what it
	// accepted from the gateway but could not hand to alice before it
	// stopped (her session was closed first) is in its offline storage,
	// and reaches her now. The gateway stays on the second server until
	// it loses it.
	firstBefore, _, _ := cols[0].counts()
	p1.Start(t)

	deadline := time.Now().Add(90 * time.Second)
	for {
		d, _ := cols.count(texts)
		if d == listItems || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	distinct, total := cols.count(texts)
	d1, _, _ := cols[0].counts()
	d2, _, _ := cols[1].counts()
	t.Logf("server list failover: first server stopped in %s; gateway on the second %s after the stop began, items flowing there after %s; "+
		"%d items: %d delivered (%d through the first, %d of them from its offline storage after its restart; %d through the second), %d duplicates, %d lost",
		stopped.Round(time.Millisecond), onSecond.Round(time.Millisecond), flowing.Round(time.Millisecond),
		listItems, distinct, d1, d1-firstBefore, d2, total-distinct, listItems-distinct)
	if distinct != listItems {
		var missing []string
		for _, s := range texts {
			if cols.seen(s) == 0 && len(missing) < 10 {
				missing = append(missing, s)
			}
		}
		t.Errorf("%d of %d items lost, e.g. %q", listItems-distinct, listItems, missing)
	}
	if r := metricValue(t, gw, `xmppgw_reconnects_total{link="xmpp"}`); r <= reconnects {
		t.Errorf("xmpp reconnects = %v, want > %v", r, reconnects)
	}
	if q := harness.QueueLen(t, q.out); q != 0 {
		t.Errorf("%d items left in the out queue", q)
	}
	if s := statusServer(t, gw); !strings.EqualFold(s, p2.ComponentAddr) {
		t.Errorf("status page: on %q, want %s", s, p2.ComponentAddr)
	}
}
