package integration

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"xmppgw/integration/harness"
	"xmppgw/queue"
)

// faultBrokerBlocks: the broker raises a memory alarm and blocks every
// publishing connection while items flow, and some of them can only be
// dead-lettered. Good items keep going out; the dead letters wait (they are
// neither lost nor re-sending anything); a SIGTERM in the middle of it
// stops the gateway within its bound instead of hanging on a publish. Once
// the alarm is cleared, a new gateway delivers everything and every bad
// item ends in the dead-letter queue.
func faultBrokerBlocks(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("blocked")
	const bad = 10
	badBodies := make([][]byte, bad)
	for i := range badBodies {
		badBodies[i] = []byte(fmt.Sprintf("not json %d", i))
	}
	publishItems(t, q.out, "blocked-bad-", badBodies)

	// The alarm is raised before the gateway starts, with everything
	// published: publishing is what the alarm blocks, the test's too. So
	// the whole flow runs under the alarm, by construction.
	c := inject()
	e.memoryAlarm(true)
	gp := newGatewayProcess(t, p, q, "rate")
	gp.start(t)
	waitFor(t, 30*time.Second, "gateway ready", gp.ready)
	// The good items of the backlog all go out while the broker blocks;
	// the bad ones behind them cannot be dead-lettered.
	waitFor(t, 90*time.Second, "the backlog delivered during the alarm", func() bool {
		return delivered(col) >= faultItems-faultHeld
	})
	e.row.detect = c.until(t, 60*time.Second, "the gateway to see the block", func() bool {
		return gp.metric(`xmppgw_amqp_blocked`) == 1
	})
	if n := gp.metric(`xmppgw_outbound_items_total{result="dead_lettered"}`); n > 0 {
		t.Fatalf("%v items dead-lettered while the broker blocks publishers", n)
	}
	stop := time.Now()
	if err := gp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gp.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = gp.cmd.Process.Kill()
		t.Fatal("SIGTERM did not stop the gateway within 60 s while the broker blocks publishers")
	}
	took := time.Since(stop)
	if code := gp.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if took > 45*time.Second {
		t.Errorf("stop took %s while the broker blocked publishers, want ≤ 45 s", took)
	}
	e.memoryAlarm(false)
	e.more()
	gp.start(t)
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gp.ready() && resumed() })
	e.settleOutbound(col, texts, 90*time.Second)
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < bad && time.Now().Before(deadline) {
		for _, d := range harness.Get(t, q.dead, bad, time.Second) {
			if r, _ := d.Headers[queue.ErrorHeader].(string); strings.HasPrefix(r, "invalid_json") {
				seen[d.MessageId] = true
			}
		}
	}
	if len(seen) != bad {
		t.Errorf("%d of %d bad items in the dead-letter queue", len(seen), bad)
	}
	e.row.note = fmt.Sprintf("stopped in %s during the alarm, exit 0; %d/%d dead-lettered after", took.Round(10*time.Millisecond), len(seen), bad)
}

// memoryAlarm raises or clears a memory alarm on the node (a watermark of
// one byte, or the default 0.4) and waits until the node reports it so.
func (e *faultEnv) memoryAlarm(on bool) {
	t := e.t
	t.Helper()
	arg := []string{"set_vm_memory_high_watermark", "0.4"}
	if on {
		arg = []string{"set_vm_memory_high_watermark", "absolute", "1"}
		t.Cleanup(func() { _, _ = e.node.Ctl("set_vm_memory_high_watermark", "0.4") })
	}
	if out, err := e.node.Ctl(arg...); err != nil {
		t.Fatalf("%v: %v %s", arg, err, out)
	}
	waitFor(t, 60*time.Second, fmt.Sprintf("memory alarm %v", on), func() bool {
		out, err := e.node.Ctl("eval", "rabbit_alarm:get_alarms().")
		return err == nil && strings.Contains(out, "memory") == on
	})
}

// metric reads one series from the process's /metrics (-1 if absent or
// unreachable).
func (gp *gatewayProcess) metric(series string) float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + gp.httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
