package leader

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/integration/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testURL is a URL of a schema of the test's own, through addr (host:port)
// when it is not empty.
func testURL(t *testing.T, addr string) string {
	t.Helper()
	u := harness.PGSchemaURL(t)
	if addr != "" {
		u = strings.Replace(u, "127.0.0.1:5432", addr, 1)
	}
	return u
}

func open(t *testing.T, url string, ttl time.Duration) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, Options{URL: url, Name: "gw.example.org", TTL: ttl, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestAcquireRenewRelease(t *testing.T) {
	url := testURL(t, "")
	a, b := open(t, url, 3*time.Second), open(t, url, 3*time.Second)
	ctx := context.Background()
	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx); ok || err != nil {
		t.Fatalf("b took a held lease: %v %v", ok, err)
	}
	if ok, err := a.Renew(ctx); !ok || err != nil {
		t.Fatalf("a renews: %v %v", ok, err)
	}
	if ok, err := b.Renew(ctx); ok || err != nil {
		t.Fatalf("b renewed a lease it does not hold: %v %v", ok, err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("b after the release: %v %v", ok, err)
	}
	if ok, _ := a.Renew(ctx); ok {
		t.Fatal("a renewed after b took the lease")
	}
	// Another component's lease is another row.
	c, err := Open(ctx, Options{URL: url, Name: "other.example.org", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("another component: %v %v", ok, err)
	}
}

func TestExpiredLeaseIsTaken(t *testing.T) {
	url := testURL(t, "")
	a, b := open(t, url, time.Second), open(t, url, time.Second)
	ctx := context.Background()
	if ok, _ := a.TryAcquire(ctx); !ok {
		t.Fatal("a")
	}
	// a stops renewing: once the TTL passed (the database's clock), b
	// takes it.
	testkit.Eventually(t, "b takes the expired lease", func() bool {
		ok, err := b.TryAcquire(ctx)
		return ok && err == nil
	})
	if ok, err := a.Renew(ctx); ok || err != nil {
		t.Fatalf("a renewed a lease it lost: %v %v", ok, err)
	}
}

// leadLog records when each gateway acts.
type leadLog struct {
	mu     sync.Mutex
	events []string
	active map[string]bool
	both   bool
}

func (l *leadLog) lead(name string) func(ctx context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.events = append(l.events, name+" leads")
		for other, on := range l.active {
			if on && other != name {
				l.both = true
			}
		}
		l.active[name] = true
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.active[name] = false
		l.events = append(l.events, name+" stops")
		l.mu.Unlock()
	}
}

func (l *leadLog) has(e string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.events {
		if x == e {
			return true
		}
	}
	return false
}

// TestStalledHolderFencesItself: the holder's link to PostgreSQL stalls
// (a proxy stops forwarding, nothing is closed): it stops acting within
// 2/3 of the TTL, before the lease expires, and the standby takes over
// after it expired; at no moment do both act.
func TestStalledHolderFencesItself(t *testing.T) {
	proxy := harness.StartProxy(t, "127.0.0.1:5432")
	url := testURL(t, "")
	const ttl = 3 * time.Second
	a := open(t, strings.Replace(url, "127.0.0.1:5432", proxy.Addr, 1), ttl)
	b := open(t, url, ttl)
	log := &leadLog{active: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.Lead(ctx, nil, log.lead("a")) }()
	testkit.Eventually(t, "a leads", func() bool { return log.has("a leads") })
	wg.Add(1)
	go func() { defer wg.Done(); b.Lead(ctx, nil, log.lead("b")) }()

	stalled := time.Now()
	proxy.StallAll(harness.Both)
	testkit.Eventually(t, "a fences itself", func() bool { return log.has("a stops") })
	fenced := time.Since(stalled)
	testkit.Eventually(t, "b takes over", func() bool { return log.has("b leads") })
	took := time.Since(stalled)
	t.Logf("stall → a stopped after %s, b leads after %s (TTL %s)", fenced.Round(time.Millisecond), took.Round(time.Millisecond), ttl)
	if fenced > ttl {
		t.Errorf("a acted %s into the stall, longer than the TTL", fenced)
	}
	log.mu.Lock()
	both, events := log.both, append([]string(nil), log.events...)
	log.mu.Unlock()
	if both {
		t.Fatalf("both gateways acted at once: %v", events)
	}
	proxy.Resume()
	cancel()
	wg.Wait()
}

// TestLeadLostToAnother: a holder whose row was taken (an operator's
// hand, a clock gone wrong) stops at its next renewal.
func TestLeadLostToAnother(t *testing.T) {
	url := testURL(t, "")
	a := open(t, url, 3*time.Second)
	log := &leadLog{active: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); a.Lead(ctx, nil, log.lead("a")) }()
	testkit.Eventually(t, "a leads", func() bool { return log.has("a leads") })
	schema := url[strings.Index(url, "search_path=")+len("search_path="):]
	harness.PGExec(t, harness.PGServer(), "UPDATE "+schema+".xmppgw_leases SET holder = 'someone-else'")
	testkit.Eventually(t, "a stops", func() bool { return log.has("a stops") })
	cancel()
	<-done
}
