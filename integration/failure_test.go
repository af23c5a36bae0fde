package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// collector receives messages for one account across disconnections: when
// its client's stream ends it dials again until it succeeds, and offline
// storage hands over what arrived meanwhile.
type collector struct {
	mu    sync.Mutex
	seen  map[string]int // body -> times received
	total int
	dials int
}

func collect(t *testing.T, p *harness.Prosody, user, pass string) *collector {
	t.Helper()
	c := &collector{seen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			cl, err := harness.Dial(dctx, p.C2SAddr, user+"@"+p.Domain, pass)
			dcancel()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			c.mu.Lock()
			c.dials++
			c.mu.Unlock()
			take := func(m harness.Msg) {
				c.mu.Lock()
				c.seen[m.Body]++
				c.total++
				c.mu.Unlock()
			}
		read:
			for {
				select {
				case <-ctx.Done():
					break read
				case m, ok := <-cl.Messages():
					if !ok {
						break read
					}
					take(m)
				case <-cl.Done():
					// Take what was buffered before the stream ended.
					for m := range cl.Messages() {
						take(m)
					}
					break read
				}
			}
			_ = cl.Close()
		}
	}()
	return c
}

func (c *collector) counts() (distinct, total, dials int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.total, c.dials
}

// missing lists the expected bodies not received (at most 10).
func (c *collector) missing(bodies []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range bodies {
		if c.seen[b] == 0 {
			out = append(out, b)
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}

// numberedItems builds n items for target with bodies "<tag> <i>".
func numberedItems(t *testing.T, tag, target string, n int) (bodies [][]byte, texts []string) {
	for i := 0; i < n; i++ {
		text := fmt.Sprintf("%s %d", tag, i)
		texts = append(texts, text)
		bodies = append(bodies, mustJSON(t, outItem{Target: target, Text: text}))
	}
	return bodies, texts
}

// waitAll waits until every text was received at least once.
func (c *collector) waitAll(t *testing.T, texts []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		distinct, total, dials := c.counts()
		if distinct >= len(texts) && len(c.missing(texts)) == 0 {
			t.Logf("received all %d items (%d deliveries, %d duplicates, %d client logins)", len(texts), total, total-distinct, dials)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d items received; missing e.g. %q", timeout, distinct, len(texts), c.missing(texts))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backlog starts a Prosody whose user alice is online through a collector,
// and puts n numbered items for her ("<tag> <i>", message ids "<tag>-<i>")
// into freshly declared queues, before any gateway runs.
func backlog(t *testing.T, tag string, n int) (*harness.Prosody, *collector, queues, []string) {
	t.Helper()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	col := collect(t, p, "alice", "alice-pass")
	waitFor(t, 10*time.Second, "client online", func() bool { _, _, d := col.counts(); return d > 0 })
	q := newQueues(t)
	bodies, texts := numberedItems(t, tag, p.JID("alice"), n)
	q.declare(t)
	publishItems(t, q.out, tag+"-", bodies)
	return p, col, q, texts
}

// The single-fault tests that were here (Prosody restarted, the gateway
// killed, the broker connections closed, all for outbound only) are rows of
// TestFaultMatrix now, with inbound flowing too.
