package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestLeaseTakeover: two gateways as processes on one component, sharing a
// PostgreSQL store and holding the component by a lease
// (presence.lease_ttl), on a Prosody that lets a new component connection
// replace an old one (component_conflict_resolve = "kick_old": safe only
// because just the lease holder connects).
//
//  1. The active one is SIGKILLed while items flow: the standby takes over
//     once the lease expired; every item arrives (duplicates allowed).
//  2. The new active one's network then stalls (its XMPP and PostgreSQL
//     links stop forwarding, nothing is closed, as on a dead path): it
//     stops acting within 2/3 of the TTL; the first gateway, started
//     again, takes the lease once it expired and replaces the half-open
//     connection at the server; every item arrives.
//
// (That the new active gateway knows every subscriber of the shared store
// is TestPGStoreTakeover's.)
func TestLeaseTakeover(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"},
		ComponentExtra: `component_conflict_resolve = "kick_old"`})
	q := newQueues(t)
	store := pgStoreURL(t)
	const ttl = 3 * time.Second
	col := collect(t, p, "alice", "alice-pass")

	// The second gateway reaches Prosody and PostgreSQL through proxies
	// that the test can stall.
	xmppProxy := harness.StartProxy(t, p.ComponentAddr)
	pgProxy := harness.StartProxy(t, "127.0.0.1:5432")
	a := newGatewayProcess(t, p, q, "store="+store, "lease="+ttl.String())
	b := newGatewayProcess(t, p, q, "store="+strings.Replace(store, "127.0.0.1:5432", pgProxy.Addr, 1), "lease="+ttl.String(), "server="+xmppProxy.Addr)
	a.start(t)
	waitFor(t, 60*time.Second, "a ready", a.ready)
	b.start(t)
	waitFor(t, 60*time.Second, "b standing by", func() bool { return b.metric("xmppgw_standby") == 1 })
	if b.ready() {
		t.Fatal("the standby is ready while the active gateway holds the lease")
	}

	// 1. SIGKILL while items flow.
	bodies, texts := numberedItems(t, "first", p.JID("alice"), 400)
	publishItems(t, q.out, "lt1-", bodies)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= 50 })
	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	waitFor(t, 60*time.Second, "b takes over", b.ready)
	tookKill := time.Since(killed)
	col.waitAll(t, texts, 90*time.Second)
	_, total1, _ := col.counts()

	// 2. b's network stalls while items flow.
	bodies2, texts2 := numberedItems(t, "second", p.JID("alice"), 400)
	publishItems(t, q.out, "lt2-", bodies2)
	waitFor(t, 60*time.Second, "items flowing through b", func() bool { return delivered(col) >= len(texts)+50 })
	a.start(t) // standing by again
	waitFor(t, 60*time.Second, "a standing by", func() bool { return a.metric("xmppgw_standby") == 1 })
	stalled := time.Now()
	xmppProxy.StallAll(harness.Both)
	pgProxy.StallAll(harness.Both)
	waitFor(t, 60*time.Second, "a takes over from the stalled b", a.ready)
	tookStall := time.Since(stalled)
	col.waitAll(t, append(texts, texts2...), 90*time.Second)
	distinct, total, _ := col.counts()
	t.Logf("takeover after SIGKILL %s, after a network stall %s (lease TTL %s); %d items, %d deliveries (%d duplicates)",
		tookKill.Round(time.Millisecond), tookStall.Round(time.Millisecond), ttl, distinct, total, total-distinct)
	report(t, "lease-takeover", "Takeover with presence.lease_ttl: "+ttl.String(), formatTable(
		[]string{"fault", "takeover", "items", "delivered", "duplicates", "lost"},
		[][]string{
			{"active gateway SIGKILLed", tookKill.Round(10 * time.Millisecond).String(), "400", fmt.Sprint(len(texts) - len(col.missing(texts))), fmt.Sprint(total1 - len(texts)), fmt.Sprint(len(col.missing(texts)))},
			{"active gateway's network stalled", tookStall.Round(10 * time.Millisecond).String(), "400", fmt.Sprint(len(texts2) - len(col.missing(texts2))), fmt.Sprint(total - total1 - len(texts2)), fmt.Sprint(len(col.missing(texts2)))},
		}))
	if limit := ttl + 15*time.Second; tookKill > limit || tookStall > limit {
		t.Errorf("takeover took %s / %s, over %s", tookKill, tookStall, limit)
	}
	xmppProxy.Cut()
	pgProxy.Cut()
}
