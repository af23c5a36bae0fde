package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// metricValue reads one sample (name with labels exactly as exposed, e.g.
// `xmppgw_connected{link="xmpp"}`) from /metrics; -1 when absent.
func metricValue(t testing.TB, gw *runningGateway, series string) float64 {
	t.Helper()
	code, body := gw.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return -1
}

// metricOrZero is metricValue with an absent series read as 0.
func metricOrZero(t testing.TB, gw *runningGateway, series string) float64 {
	t.Helper()
	return max(0, metricValue(t, gw, series))
}

// TestMetricsAfterKnownTraffic sends known traffic both ways, including a
// bounce, and checks the gateway's series.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))

	// Out: 50 good items with enqueued_at, 3 too long, 2 not JSON, and one to
	// a user that does not exist (the server bounces it).
	var bodies [][]byte
	for i := 0; i < 50; i++ {
		bodies = append(bodies, mustJSON(t, outItem{Target: p.JID("alice"), Text: fmt.Sprint("m", i),
			EnqueuedAt: time.Now().Add(-2 * time.Second).UTC().Format(time.RFC3339Nano)}))
	}
	for i := 0; i < 3; i++ {
		bodies = append(bodies, mustJSON(t, outItem{Target: p.JID("alice"), Text: strings.Repeat("x", 70000)}))
	}
	bodies = append(bodies, []byte("nope"), []byte("[1]"))
	bodies = append(bodies, mustJSON(t, outItem{Target: "nobody@" + p.Domain, Text: "hello?", ID: "bounce-me"}))
	publishItems(t, q.out, "known-", bodies)
	for i := 0; i < 50; i++ {
		recv(t, alice, 10*time.Second)
	}

	// In: 20 messages.
	for i := 0; i < 20; i++ {
		if err := alice.Send(context.Background(), "notices@"+p.ComponentDomain, fmt.Sprint("in", i)); err != nil {
			t.Fatal(err)
		}
	}

	// The bounce comes back as an error event with our id.
	var bounce event
	waitFor(t, 15*time.Second, "the error event of the bounce", func() bool {
		for _, d := range harness.Get(t, q.in, 100, 0) {
			if ev := decodeEvent(t, d); ev.Kind == "error" {
				bounce = ev
			}
		}
		return bounce.Kind == "error"
	})
	if bounce.ID != "bounce-me" || bounce.Condition != "service-unavailable" || bounce.From != "nobody@"+p.Domain {
		t.Fatalf("error event = %+v", bounce)
	}

	want := map[string]float64{
		`xmppgw_outbound_items_total{result="sent"}`:                     51,
		`xmppgw_outbound_items_total{result="dead_lettered"}`:            5,
		`xmppgw_outbound_dead_letters_total{reason="text_too_long"}`:     3,
		`xmppgw_outbound_dead_letters_total{reason="invalid_json"}`:      2,
		`xmppgw_outbound_bounces_total{condition="service-unavailable"}`: 1,
		`xmppgw_inbound_events_total{kind="message",route="default"}`:    20,
		`xmppgw_inbound_events_total{kind="error",route="default"}`:      1,
		`xmppgw_outbound_lag_seconds_count`:                              51,
		`xmppgw_connected{link="xmpp"}`:                                  1,
		`xmppgw_connected{link="amqp"}`:                                  1,
		`xmppgw_reconnects_total{link="xmpp"}`:                           0,
		`xmppgw_outbound_in_flight`:                                      0,
		`xmppgw_amqp_blocked`:                                            0,
		`xmppgw_queue_depth{queue="` + q.out + `"}`:                      0,
		`xmppgw_queue_depth{queue="` + q.dead + `"}`:                     5,
	}
	waitFor(t, 15*time.Second, "metrics to settle (depth is polled every 5 s)", func() bool {
		for series, v := range want {
			if metricValue(t, gw, series) != v {
				return false
			}
		}
		return true
	})
	for series, v := range want {
		if got := metricValue(t, gw, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	// 50 items were enqueued 2 s before: their lag is at least that.
	if sum := metricValue(t, gw, `xmppgw_outbound_lag_seconds_sum`); sum < 100 {
		t.Errorf("lag sum = %v, want ≥ 100 (50 items × ≥ 2 s)", sum)
	}
	if n := metricValue(t, gw, `xmppgw_barrier_seconds_count`); n < 1 {
		t.Errorf("barrier count = %v", n)
	}
	_, body := gw.get(t, "/metrics")
	if strings.Contains(body, "alice@") || strings.Contains(body, "nobody@") {
		t.Error("a JID appears in /metrics")
	}
	for _, std := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, std) {
			t.Errorf("/metrics lacks %s", std)
		}
	}
	if code, _ := gw.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d while up", code)
	}
	if code, _ := gw.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

// TestReadyzFollowsXMPP: /readyz is 503 while the XMPP server is down.
func TestReadyzFollowsXMPP(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{})
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))
	p.Stop(t)
	waitFor(t, 20*time.Second, "/readyz 503", func() bool { code, _ := gw.get(t, "/readyz"); return code == 503 })
	if code, body := gw.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %s while XMPP is down", code, body)
	}
	if v := metricValue(t, gw, `xmppgw_connected{link="xmpp"}`); v != 0 {
		t.Fatalf("connected{xmpp} = %v while down", v)
	}
	p.Start(t)
	waitFor(t, 40*time.Second, "/readyz 200 again", func() bool { code, _ := gw.get(t, "/readyz"); return code == 200 })
	if v := metricValue(t, gw, `xmppgw_reconnects_total{link="xmpp"}`); v != 1 {
		t.Fatalf("reconnects{xmpp} = %v, want 1", v)
	}
}
