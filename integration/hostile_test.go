package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// TestInboundHostileInput sends what a hostile or broken client might: an
// oversized body, deep nesting, invalid UTF-8 and a flood. The gateway
// answers with errors, keeps running, and still turns good messages into
// events.
func TestInboundHostileInput(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{
		Users: map[string]string{"alice": "alice-pass", "mallory": "mallory-pass"},
		// Let oversized stanzas through Prosody so that the gateway's own
		// limits are what is tested.
		Global: "c2s_stanza_size_limit = 4*1024*1024\ncomponent_stanza_size_limit = 4*1024*1024\n",
	})
	mallory := harness.DialClient(t, p, "mallory", "mallory-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))
	to := "notices@" + p.ComponentDomain
	ctx := context.Background()

	expectError := func(id, condition string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-mallory.Messages():
				if m.ID != id {
					continue
				}
				if m.Type != "error" || !strings.Contains(m.Raw, condition) {
					t.Fatalf("%s: want a %s error, got %s", id, condition, m.Raw)
				}
				return
			case <-deadline:
				t.Fatalf("%s: no error reply", id)
			}
		}
	}

	// 300 KiB of text: over the gateway's 256 KiB inbound limit.
	big := strings.Repeat("A", 300<<10)
	if err := mallory.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='big' to='%s'><body>%s</body></message>`, to, big)); err != nil {
		t.Fatal(err)
	}
	expectError("big", "policy-violation")

	// 200 levels of nesting: over the depth limit of 32.
	deep := strings.Repeat("<x xmlns='urn:example:deep'>", 200) + strings.Repeat("</x>", 200)
	if err := mallory.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='deep' to='%s'><body>hi</body>%s</message>`, to, deep)); err != nil {
		t.Fatal(err)
	}
	expectError("deep", "policy-violation")

	// A JSON payload that is not JSON.
	if err := mallory.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='badjson' to='%s'><json xmlns='urn:xmpp:json:0'>{not json</json></message>`, to)); err != nil {
		t.Fatal(err)
	}
	expectError("badjson", "not-acceptable")

	// Invalid UTF-8 never reaches the gateway: Prosody ends that client's
	// stream. The gateway must not notice at all.
	eve := harness.DialClient(t, p, "alice", "alice-pass")
	_ = eve.SendRaw(ctx, "<message type='chat' id='utf8' to='"+to+"'><body>\xff\xfe</body></message>")
	select {
	case <-eve.Done():
	case <-time.After(10 * time.Second):
		t.Log("Prosody kept the stream open after invalid UTF-8")
	}

	// A flood from one sender: every message becomes an event or is
	// refused with an error; memory stays bounded.
	const n = 20000
	body := strings.Repeat("flood ", 300) // ~1.8 KB
	for i := 0; i < n; i++ {
		if err := mallory.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='f-%d' to='%s'><body>%d %s</body></message>`, i, to, i, body)); err != nil {
			t.Fatal(err)
		}
	}
	var maxHeap float64
	refused := 0
	waitFor(t, 60*time.Second, "every flood message accounted for", func() bool {
		maxHeap = max(maxHeap, metricValue(t, gw, "go_memstats_heap_inuse_bytes"))
		for {
			select {
			case m := <-mallory.Messages():
				if m.Type == "error" && strings.HasPrefix(m.ID, "f-") {
					refused++
				}
				continue
			default:
			}
			break
		}
		events := metricOrZero(t, gw, `xmppgw_inbound_events_total{kind="message",route="default"}`)
		return int(events)+refused >= n
	})
	t.Logf("flood of %d: %d refused; peak heap in use %.0f MiB (test clients included)", n, refused, maxHeap/(1<<20))
	if !gw.Ready() {
		t.Fatal("gateway not ready after the flood")
	}
	if got := len(harness.Get(t, q.in, n+10, 5*time.Second)); got+refused != n {
		t.Fatalf("%d events in the queue + %d refused, want %d", got, refused, n)
	}

	// Still working: a normal message becomes an event.
	if err := mallory.Send(ctx, to, "still here"); err != nil {
		t.Fatal(err)
	}
	ev := decodeEvent(t, harness.Drain(t, q.in, 1, 10*time.Second)[0])
	if ev.Text != "still here" {
		t.Fatalf("after the hostile input: %+v", ev)
	}
}
