package presence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/integration/harness"
	"xmppgw/stanza"
)

// schemaOf is the schema of a test store's URL.
func schemaOf(loc string) string {
	_, s, _ := strings.Cut(loc, "search_path=")
	s, _, _ = strings.Cut(s, "&")
	return s
}

// pgCount returns the single integer that sql (on the test's schema) gives.
func pgCount(t *testing.T, loc, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Two gateways of one component (two stores on one database) see each
// other's subscriptions; a third component in the same database sees none.
func TestPGStoreShared(t *testing.T) {
	loc := pgTestSchema(t)
	a := openKind(t, "postgres", loc)
	defer a.close()
	if _, err := a.addSubscriber(tLocal, tAlice); err != nil {
		t.Fatal(err)
	}
	if err := a.setSubscription(tLocal, tAlice, subApproved); err != nil {
		t.Fatal(err)
	}
	b := openKind(t, "postgres", loc) // opened after: loaded at open
	defer b.close()
	if ok, err := b.isSubscriber(tLocal, tAlice); err != nil || !ok {
		t.Fatalf("b: alice subscriber %v %v", ok, err)
	}
	if st, _ := b.subscription(tLocal, tAlice); st != subApproved {
		t.Fatalf("b: subscription %q", st)
	}
	// written by a after b opened: a lookup asks the database before
	// saying no, a refresh (after a connect) loads it
	if _, err := a.addSubscriber(tOther, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.isSubscriber(tOther, "bob@example.org"); err != nil || !ok {
		t.Fatalf("b: bob subscriber %v %v", ok, err)
	}
	if err := b.refresh(); err != nil {
		t.Fatal(err)
	}
	var subs []string
	_ = b.eachSubscriber(func(l, c string) error { subs = append(subs, l+" "+c); return nil })
	if strings.Join(subs, ",") != tLocal+" "+tAlice+","+tOther+" bob@example.org" {
		t.Errorf("b's subscribers after refresh: %q", subs)
	}
	if n, m, _ := b.counts(); n != 2 || m != 1 {
		t.Errorf("b's counts %d %d", n, m)
	}
	// b writes, a sees
	if _, err := b.removeSubscriber(tLocal, tAlice); err != nil {
		t.Fatal(err)
	}
	if err := a.refresh(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.isSubscriber(tLocal, tAlice); ok {
		t.Error("a still has alice after b removed her")
	}
	// another component in the same database
	c, err := openPG(loc, "other.example.org", testkit.Logger(t), testPGOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if n, _, _ := c.counts(); n != 0 {
		t.Errorf("another component sees %d subscribers", n)
	}
	if ok, _ := c.isSubscriber(tOther, "bob@example.org"); ok {
		t.Error("another component sees bob")
	}
}

// Migrating twice changes nothing; a database of a newer schema is
// refused with an error naming the key.
func TestPGMigrateTwice(t *testing.T) {
	loc := pgTestSchema(t)
	for range 2 {
		st := openKind(t, "postgres", loc)
		if _, err := st.addSubscriber(tLocal, tAlice); err != nil {
			t.Fatal(err)
		}
		st.close()
	}
	if n := pgCount(t, loc, `SELECT count(*) FROM xmppgw_presence_version`); n != pgSchemaVersion {
		t.Errorf("%d version rows, want %d", n, pgSchemaVersion)
	}
	if n := pgCount(t, loc, `SELECT count(*) FROM xmppgw_subscribers`); n != 1 {
		t.Errorf("%d subscribers", n)
	}
	pgAdmin(t, "INSERT INTO "+schemaOf(loc)+".xmppgw_presence_version (version) VALUES (99)")
	_, err := openPG(loc, tDomain, testkit.Logger(t), testPGOptions)
	if !errors.Is(err, errSchemaNewer) && (err == nil || !strings.Contains(err.Error(), "newer xmppgw")) {
		t.Fatalf("open of a newer schema: %v", err)
	}
	if !strings.Contains(err.Error(), "presence.store") {
		t.Errorf("error does not name the key: %v", err)
	}
}

// Gateways that start at once on an empty database create the schema once.
func TestPGConcurrentStart(t *testing.T) {
	loc := pgTestSchema(t)
	const n = 8
	var wg sync.WaitGroup
	stores := make([]store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = openPG(loc, tDomain, testkit.Logger(t), testPGOptions)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("%d: %v", i, errs[i])
			continue
		}
		if _, err := stores[i].addSubscriber(fmt.Sprintf("n%d@%s", i, tDomain), tAlice); err != nil {
			t.Error(err)
		}
		defer stores[i].close()
	}
	if v := pgCount(t, loc, `SELECT count(*) FROM xmppgw_presence_version`); v != pgSchemaVersion {
		t.Errorf("%d version rows", v)
	}
	if v := pgCount(t, loc, `SELECT count(*) FROM xmppgw_subscribers`); v != n {
		t.Errorf("%d subscribers, want %d", v, n)
	}
}

// Errors at start name presence.store, say what is wrong, and never show
// the password.
func TestPGOpenErrors(t *testing.T) {
	const pw = "Qz8PgSecret"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for i, tc := range []struct{ url, want string }{
		0: {"postgres://gw:" + pw + "@" + closed + "/test?sslmode=disable", "unreachable"},
		1: {"postgres://postgres:" + pw + "@127.0.0.1:5432/xmppgw_no_such_db_" + pw + "x?sslmode=disable", "database does not exist"},
		2: {"postgres://gw:" + pw + "@127.0.0.1:5432/test?sslmode=disable&search_path=xmppgw_no_such_schema", "no schema"},
		3: {"postgres://gw:" + pw + "@127.0.0.1:5432/test?sslmode=bogus", "not a valid postgres:// URL"},
		4: {"postgres://gw:" + pw + "@127.0.0.1:5432/test?connect_timeout=x", "not a valid postgres:// URL"},
	} {
		if i == 2 {
			tc.url = strings.Replace(tc.url, "gw:", "postgres:", 1)
		}
		_, err := openPG(tc.url, tDomain, testkit.Logger(t), testPGOptions)
		if err == nil {
			t.Errorf("%d: opened", i)
			continue
		}
		msg := err.Error()
		t.Logf("%d: %s", i, msg)
		if i == 0 && !errors.Is(err, ErrStoreUnavailable) {
			t.Errorf("%d: not ErrStoreUnavailable", i)
		}
		if !strings.HasPrefix(msg, "presence.store postgres://") {
			t.Errorf("%d: does not name the key: %s", i, msg)
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%d: %q does not say %q", i, msg, tc.want)
		}
		if strings.Contains(msg, pw) {
			t.Errorf("%d: the password shows: %s", i, msg)
		}
	}
}

// pgProxy forwards TCP to the test PostgreSQL; setDown(true) cuts every
// connection and refuses new ones until setDown(false).
type pgProxy struct{ *harness.Proxy }

func startPGProxy(t *testing.T) *pgProxy { return &pgProxy{harness.StartProxy(t, "127.0.0.1:5432")} }

func (p *pgProxy) setDown(down bool) { p.SetDown(down) }

// url is loc (a test schema's URL) through the proxy.
func (p *pgProxy) url(loc string) string {
	return strings.Replace(loc, "127.0.0.1:5432", p.Addr, 1)
}

// waitUntil polls cond (every 10 ms) for at most d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While PostgreSQL is down the gateway never answers unsubscribed for lack
// of data: a known subscriber's probe is answered available, a stranger's
// is not answered, a new subscribe waits and is approved and stored once
// the database is back. The outage is a proxy that drops every connection
// (stop), or the server terminating the gateway's backends.
func TestPGStoreOutage(t *testing.T) {
	for _, how := range []string{"proxy", "terminate"} {
		t.Run(how, func(t *testing.T) { testPGOutage(t, how) })
	}
}

func testPGOutage(t *testing.T, how string) {
	loc := pgTestSchema(t)
	proxy := startPGProxy(t)
	appName := schemaOf(loc) // unique: the backends to terminate
	stURL := proxy.url(loc) + "&application_name=" + appName
	st, err := openPG(stURL, tDomain, testkit.Logger(t), testPGOptions)
	if err != nil {
		t.Fatal(err)
	}
	useStore(t, "bolt")
	p, _ := testService(t, stanza.ModeComponent, "auto", nil)
	_ = p.st.close()
	p.st = st
	w := &presWriter{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// offer hands a presence to the worker and waits until it handled it
	// (a probe of our own domain is ignored: a marker that went through).
	offer := func(pr stanza.Presence) {
		t.Helper()
		p.Offer(w, &pr)
		waitUntil(t, 5*time.Second, "the worker", func() bool { return len(p.jobs) == 0 })
		p.Offer(w, &stanza.Presence{Type: "probe", From: "x@" + tDomain, To: tLocal})
		waitUntil(t, 5*time.Second, "the worker", func() bool { return len(p.jobs) == 0 })
	}
	offer(stanza.Presence{Type: "subscribe", From: tAlice, To: tLocal, ID: "s1"})
	if got := w.take(); !strings.Contains(got, "type='subscribed' id='s1'") {
		t.Fatalf("alice not approved: %s", got)
	}

	if how == "terminate" {
		// The server ends the gateway's connections (as a restart of
		// PostgreSQL would) and is there again at once: the next change
		// finds its connection dead, and is made once the watcher has
		// a new one.
		if n := pgCount(t, loc, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) x`, appName); n == 0 {
			t.Fatal("no backend to terminate")
		}
		offer(stanza.Presence{Type: "subscribe", From: "carol@example.org/x", To: tLocal, ID: "c1"})
		offer(stanza.Presence{Type: "probe", From: tAliceR, To: tLocal, ID: "p1"})
		waitUntil(t, 10*time.Second, "carol approved", func() bool {
			return strings.Contains(w.take(), `<presence from='notices@gw.example.org' to='carol@example.org' type='subscribed' id='c1'/>`)
		})
		if n := pgCount(t, loc, `SELECT count(*) FROM xmppgw_subscribers`); n != 2 {
			t.Fatalf("%d subscribers after the backends were terminated, want 2", n)
		}
		return
	}
	// the database goes away, and stays away
	proxy.setDown(true)
	// a change finds it gone: carol's subscribe waits, unanswered
	offer(stanza.Presence{Type: "subscribe", From: "carol@example.org/x", To: tLocal, ID: "c1"})
	if st.available() {
		t.Fatal("store still available")
	}
	if got := w.take(); got != "" {
		t.Fatalf("carol's subscribe answered while the store is down: %s", got)
	}
	// alice's probe: available, from memory
	offer(stanza.Presence{Type: "probe", From: tAliceR, To: tLocal, ID: "p1"})
	if got := w.take(); got != `<presence from='notices@gw.example.org' to='alice@example.org/phone' id='p1'><status>at your service</status></presence>` {
		t.Fatalf("alice's probe while down: %q", got)
	}
	// a stranger's probe, and carol's (her subscribe is not stored yet):
	// no answer at all, never unsubscribed
	offer(stanza.Presence{Type: "probe", From: "bob@example.org/y", To: tLocal, ID: "p2"})
	offer(stanza.Presence{Type: "probe", From: "carol@example.org/x", To: tLocal, ID: "p3"})
	if got := w.take(); got != "" {
		t.Fatalf("probes of unknown contacts answered while down: %s", got)
	}
	// a worker's subscribed item waits too, behind carol
	p.Sent(&stanza.Info{Kind: "presence", PresenceType: "subscribed", From: tOther, To: "dave@example.org"})
	waitUntil(t, 5*time.Second, "the worker", func() bool { return len(p.jobs) == 0 })
	if n := pgCount(t, loc, `SELECT count(*) FROM xmppgw_subscribers`); n != 1 {
		t.Fatalf("%d subscribers in the database while the gateway cannot reach it", n)
	}

	// the database is back: carol is approved and stored, then dave
	proxy.setDown(false)
	waitUntil(t, 10*time.Second, "carol approved", func() bool {
		return strings.Contains(w.take(), `<presence from='notices@gw.example.org' to='carol@example.org' type='subscribed' id='c1'/>`)
	})
	waitUntil(t, 10*time.Second, "carol and dave stored", func() bool {
		return pgCount(t, loc, `SELECT count(*) FROM xmppgw_subscribers`) == 3
	})
	offer(stanza.Presence{Type: "probe", From: "bob@example.org/y", To: tLocal, ID: "p4"})
	if got := w.take(); got != `<presence from='notices@gw.example.org' to='bob@example.org' type='unsubscribed'/>` {
		t.Errorf("a stranger's probe once the store is back: %q", got)
	}
}

// Past presenceDeferMax waiting changes, a new subscribe is answered with
// a temporary error (type wait), not approved and forgotten.
func TestPGStoreOutageBounded(t *testing.T) {
	loc := pgTestSchema(t)
	proxy := startPGProxy(t)
	st, err := openPG(proxy.url(loc), tDomain, testkit.Logger(t), testPGOptions)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := testService(t, stanza.ModeComponent, "auto", nil)
	_ = p.st.close()
	p.st = st
	w := &presWriter{}
	proxy.setDown(true)
	for i := range presenceDeferMax + 3 {
		p.handle(&presJob{op: opInbound, w: w, pr: stanza.Presence{Type: "subscribe", From: fmt.Sprintf("u%d@example.org", i), To: tLocal, ID: fmt.Sprint("s", i)}})
	}
	got := w.take()
	if n := strings.Count(got, "type='error'"); n != 3 {
		t.Fatalf("%d errors, want 3: %.300s", n, got)
	}
	if !strings.Contains(got, `<presence from='notices@gw.example.org' to='u1026@example.org' type='error' id='s1026'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`) {
		t.Errorf("error stanza: %.400s", got)
	}
	if strings.Contains(got, "subscribed") || strings.Contains(got, "unsubscribed") {
		t.Errorf("answered while down: %.300s", got)
	}
	// back: the waiting subscribes are approved, under the rate cap
	proxy.setDown(false)
	waitUntil(t, 10*time.Second, "the store back", st.available)
	p.replay()
	if len(p.deferred) != 0 {
		t.Fatalf("%d still waiting", len(p.deferred))
	}
	if n, _, _ := st.counts(); n != presenceSubscribeRate {
		t.Errorf("%d subscribers after the outage, want %d (the rate cap)", n, presenceSubscribeRate)
	}
	p.st.close()
}

// The behaviour tests of the service run on PostgreSQL too.
func TestPresenceOnPostgres(t *testing.T) {
	for i, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"AutoSubscribe", TestPresenceAutoSubscribe},
		{"Deny", TestPresenceDeny},
		{"Forward", TestPresenceForward},
		{"Probe", TestPresenceProbe},
		{"UnsubscribeBothWays", TestPresenceUnsubscribeBothWays},
		{"Tracking", TestPresenceTracking},
		{"ReconnectSweep", TestPresenceReconnectSweep},
		{"GoodbyeAndReload", TestPresenceGoodbyeAndReload},
		{"WorkerAndDrops", TestPresenceWorkerAndDrops},
		{"SentHook", TestPresenceSentHook},
		{"SubscriptionFlood", TestPresenceSubscriptionFlood},
		{"SubscribeBackAtCap", TestPresenceSubscribeBackAtCap},
		{"TrackingCaps", TestPresenceTrackingCaps},
		{"WarnSampled", TestPresenceWarnSampled},
		{"SubscribeCycleRate", TestPresenceSubscribeCycleRate},
	} {
		t.Run(fmt.Sprint(i, "-", tc.name), func(t *testing.T) {
			useStore(t, "postgres")
			tc.f(t)
			if harnessStore != "postgres" {
				t.Fatal("not run on postgres")
			}
		})
	}
}

// A standby's service opened before the active gateway recorded a
// subscriber: after its connect (a takeover) it announces itself to that
// subscriber, probes the contacts who approved, and counts them.
func TestPGTakeoverAnnounce(t *testing.T) {
	loc := pgTestSchema(t)
	useStore(t, "bolt")
	standby, _ := testService(t, stanza.ModeComponent, "auto", nil)
	_ = standby.st.close()
	var err error
	if standby.st, err = openPG(loc, tDomain, testkit.Logger(t), testPGOptions); err != nil {
		t.Fatal(err)
	}
	active := openKind(t, "postgres", loc)
	defer active.close()
	if _, err := active.addSubscriber(tLocal, tAlice); err != nil {
		t.Fatal(err)
	}
	if err := active.setSubscription(tLocal, tAlice, subApproved); err != nil {
		t.Fatal(err)
	}
	w := &presWriter{}
	standby.handleCtl(ctlReq{op: ctlOnline, w: w})
	if got := w.take(); got != `<presence from='notices@gw.example.org' to='alice@example.org'><status>at your service</status></presence>`+
		`<presence from='notices@gw.example.org' to='alice@example.org' type='probe'/>` {
		t.Errorf("standby's announce after its connect: %q", got)
	}
	if v := testutil.ToFloat64(standby.m.PresenceSubscribers); v != 1 {
		t.Errorf("subscribers gauge %v", v)
	}
}

// fakePGAuth is a server that asks for a clear-text password and refuses
// it as PostgreSQL does (SQLSTATE 28P01); it returns its address and the
// password it received.
func fakePGAuth(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil { // startup message
			return
		}
		n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
		if _, err := io.ReadFull(c, make([]byte, n-4)); err != nil {
			return
		}
		_, _ = c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3}) // cleartext password, please
		var typ [5]byte
		if _, err := io.ReadFull(c, typ[:]); err != nil || typ[0] != 'p' {
			return
		}
		n = int(typ[1])<<24 | int(typ[2])<<16 | int(typ[3])<<8 | int(typ[4])
		pw := make([]byte, n-4)
		if _, err := io.ReadFull(c, pw); err != nil {
			return
		}
		ch <- strings.TrimRight(string(pw), "\x00")
		fields := "SFATAL\x00VFATAL\x00C28P01\x00Mpassword authentication failed for user \"gw\"\x00\x00"
		l := len(fields) + 4
		_, _ = c.Write(append([]byte{'E', byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)}, fields...))
	}()
	return ln.Addr().String(), ch
}

// A refused login at start says so, names the key, and shows no password.
func TestPGOpenAuthFailed(t *testing.T) {
	const pw = "Qz8AuthSecret"
	addr, got := fakePGAuth(t)
	_, err := openPG("postgres://gw:"+pw+"@"+addr+"/xmppgw?sslmode=disable", tDomain, testkit.Logger(t), testPGOptions)
	if err == nil {
		t.Fatal("opened")
	}
	t.Log(err)
	select {
	case p := <-got:
		if p != pw {
			t.Fatalf("the server got password %q", p)
		}
	default:
		t.Fatal("the server never asked for the password")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "presence.store postgres://gw:xxxxx@"+addr+"/xmppgw?sslmode=disable: authentication failed") || strings.Contains(msg, pw) {
		t.Errorf("error %q", msg)
	}
	if errors.Is(err, ErrStoreUnavailable) {
		t.Error("a refused login is not an unavailable store")
	}
}
