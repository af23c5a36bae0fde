package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"xmppgw/gateway"
	"xmppgw/integration/harness"
)

// The fault matrix: one fault per subtest, injected while items flow out
// (and, where the fault leaves the clients' server up, while messages flow
// in), at a point fixed by counting (N items delivered, N events queued),
// never by sleeping. Every row of the printed table must show 0 lost.
//
// All of it runs against a private RabbitMQ node (harness.StartRabbitMQ),
// so that restarting "the broker" disturbs nobody else.

// Sizes of the matrix: a few thousand items per fault, paced so that the
// fault falls in the middle of the flow.
const (
	faultItems    = 3600 // outbound items per fault
	faultAt       = 1000 // inject after this many were delivered (or sent)
	faultRate     = 600  // outbound.rate, stanzas per second
	faultPrefetch = 100  // amqp.prefetch: few items in flight, so a pause shows
	faultHeld     = 600  // items published only once the fault was noticed
	faultInbound  = 600  // inbound messages per phase (before, during, after)
)

// faultRow is one line of the table.
type faultRow struct {
	fault                    string
	items, delivered, dups   int
	lost                     int
	detect, recover          time.Duration
	inSent, inQueued, inRef  int
	inLost                   int
	inLossAllowed            bool // SIGKILL: what the process held is gone
	note                     string
	hasInbound, measuredOut  bool
	detectNA, recoverMissing bool
}

func (r *faultRow) cells() []string {
	d := func(x time.Duration, na bool) string {
		if na {
			return "n/a"
		}
		if x == 0 {
			return "-"
		}
		return x.Round(10 * time.Millisecond).String()
	}
	in := "-"
	if r.hasInbound {
		in = fmt.Sprintf("%d/%d/%d/%d", r.inSent, r.inQueued, r.inRef, r.inLost)
	}
	out := []string{r.fault, "-", "-", "-", "-"}
	if r.measuredOut {
		out = []string{r.fault, strconv.Itoa(r.items), strconv.Itoa(r.delivered), strconv.Itoa(r.dups), strconv.Itoa(r.lost)}
	}
	return append(out, d(r.detect, r.detectNA), d(r.recover, r.recoverMissing), in, r.note)
}

// formatTable renders rows as a Markdown table under header.
func formatTable(header []string, rows [][]string) string {
	w := make([]int, len(header))
	for _, r := range append([][]string{header}, rows...) {
		for i, c := range r {
			w[i] = max(w[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i, c := range r {
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", w[i]-len([]rune(c))))
		}
		b.WriteString("\n")
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", w[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

// report logs a table and, when $XMPPGW_TEST_REPORTS names a directory
// (make test and make faults set it), writes it there as name.md.
func report(t *testing.T, name, title, table string) {
	t.Logf("%s\n%s", title, table)
	dir := os.Getenv("XMPPGW_TEST_REPORTS")
	if dir == "" {
		return
	}
	text := "## " + title + "\n\n" + table + "\n"
	if err := os.WriteFile(filepath.Join(dir, name+".md"), []byte(text), 0o644); err != nil {
		t.Errorf("report: %v", err)
	}
}

// faultEnv is what one fault's subtest works with.
type faultEnv struct {
	t    *testing.T
	node *harness.RabbitMQ
	row  *faultRow
	more func() // publishes the held items (see backlog)
}

func TestFaultMatrix(t *testing.T) {
	began := time.Now()
	// A broker heartbeat of 4 s: the gateway's 10 s is not configurable,
	// and the smaller one wins. (2 s gave false timeouts on this busy
	// 2-core machine: the broker may wait up to two intervals to send one,
	// the client gives up after three.)
	node := harness.StartRabbitMQ(t, harness.RabbitMQOptions{Heartbeat: 4})
	t.Logf("private RabbitMQ node %s started in %s", node.Node, node.StartTime.Round(time.Millisecond))
	var (
		mu   sync.Mutex
		rows []*faultRow
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		var cells [][]string
		for _, r := range rows {
			cells = append(cells, r.cells())
		}
		report(t, "fault-matrix", fmt.Sprintf("Fault matrix (%s; %d items per fault; inbound = sent/queued/refused/lost)", time.Since(began).Round(time.Second), faultItems),
			formatTable([]string{"fault", "items", "delivered", "duplicates", "lost", "time to detect", "time to recover", "inbound", "note"}, cells))
	})
	for _, f := range []struct {
		name string
		run  func(e *faultEnv)
	}{
		{"prosody stopped and started", faultProsodyRestart},
		{"prosody SIGKILL, recipient offline", faultProsodyKillOffline},
		{"broker connections closed", faultBrokerConnectionsClosed},
		{"broker restarted", faultBrokerRestart},
		{"xmpp link stalled", faultXMPPStall},
		{"broker link stalled", faultBrokerStall},
		{"broker blocks publishers (memory alarm)", faultBrokerBlocks},
		{"gateway SIGTERM", func(e *faultEnv) { faultGatewaySignal(e, syscall.SIGTERM) }},
		{"gateway SIGKILL", func(e *faultEnv) { faultGatewaySignal(e, syscall.SIGKILL) }},
		{"standby takes over (SIGKILL)", faultStandbyTakeover},
	} {
		row := &faultRow{fault: f.name}
		mu.Lock()
		rows = append(rows, row)
		mu.Unlock()
		t.Run(strings.NewReplacer(" ", "_", ",", "").Replace(f.name), func(t *testing.T) {
			harness.UseBroker(t, node.URL)
			f.run(&faultEnv{t: t, node: node, row: row})
		})
	}
}

// --- outbound accounting --------------------------------------------------

// settleOutbound waits until every text arrived (or timeout), fills the
// outbound columns of the row and fails on any loss.
func (e *faultEnv) settleOutbound(col *collector, texts []string, timeout time.Duration) {
	t := e.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(col.missing(texts)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// Late duplicates still on their way are not interesting; count now.
	distinct, total, _ := col.counts()
	e.row.measuredOut = true
	e.row.items = len(texts)
	e.row.delivered = distinct
	e.row.dups = total - distinct
	miss := 0
	col.mu.Lock()
	for _, s := range texts {
		if col.seen[s] == 0 {
			miss++
		}
	}
	col.mu.Unlock()
	e.row.lost = miss
	if miss > 0 {
		t.Errorf("%s: %d of %d items lost, e.g. %q", e.row.fault, miss, len(texts), col.missing(texts))
	}
}

// delivered is the number of distinct items the collector received.
func delivered(col *collector) int { d, _, _ := col.counts(); return d }

// --- inbound flow ----------------------------------------------------------

// inFlow sends numbered messages from a real client to the gateway, in
// phases the test places around the fault, and accounts for each: an event
// in the in queue or an error stanza back to the sender.
type inFlow struct {
	c    *harness.Client
	to   string
	tag  string
	sent int
}

func newInFlow(t *testing.T, p *harness.Prosody, user, tag string) *inFlow {
	t.Helper()
	p.Register(t, user, user+"-pass")
	return &inFlow{c: harness.DialClient(t, p, user, user+"-pass"), to: "notices@" + p.ComponentDomain, tag: tag}
}

func (f *inFlow) id(i int) string { return fmt.Sprintf("%s-%d", f.tag, i) }

// send sends n more messages as fast as the stream takes them.
func (f *inFlow) send(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < n; i++ {
		id := f.id(f.sent)
		raw := fmt.Sprintf(`<message type='chat' id='%s' to='%s'><body>%s</body></message>`, id, f.to, id)
		if err := f.c.SendRaw(ctx, raw); err != nil {
			t.Fatalf("inbound sender: %v", err)
		}
		f.sent++
	}
}

// account reads every event of the in queue and the sender's errors until
// each message is one or the other or timeout passes; fills the row and
// fails on a loss unless the row allows it.
func (e *faultEnv) account(f *inFlow, in string, timeout time.Duration) {
	t := e.t
	t.Helper()
	queued, refused := map[string]bool{}, map[string]bool{}
	deadline := time.Now().Add(timeout)
	accounted := func() int {
		n := 0
		for i := 0; i < f.sent; i++ {
			if queued[f.id(i)] || refused[f.id(i)] {
				n++
			}
		}
		return n
	}
	for {
		for _, d := range harness.Get(t, in, 100000, 0) {
			queued[decodeEvent(t, d).ID] = true
		}
	errors:
		for {
			select {
			case m, ok := <-f.c.Messages():
				if !ok {
					break errors
				}
				if m.Type == "error" {
					refused[m.ID] = true
				}
			default:
				break errors
			}
		}
		if accounted() == f.sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.row.hasInbound = true
	e.row.inSent, e.row.inQueued, e.row.inRef = f.sent, len(queued), len(refused)
	e.row.inLost = f.sent - accounted()
	if e.row.inLost > 0 {
		var missing []string
		for i := 0; i < f.sent && len(missing) < 10; i++ {
			if !queued[f.id(i)] && !refused[f.id(i)] {
				missing = append(missing, f.id(i))
			}
		}
		if e.row.inLossAllowed {
			t.Logf("%s: %d inbound messages neither queued nor refused (held by the killed process), e.g. %v", e.row.fault, e.row.inLost, missing)
		} else {
			t.Errorf("%s: %d of %d inbound messages neither queued nor refused, e.g. %v", e.row.fault, e.row.inLost, f.sent, missing)
		}
	}
}

// --- timing ----------------------------------------------------------------

// clock measures detection and recovery from the moment of injection.
type clock struct{ at time.Time }

func inject() clock { return clock{at: time.Now()} }

// until polls cond every 20 ms and returns the time since injection when
// it holds; 0 and a test error after timeout.
func (c clock) until(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out after %s waiting for %s", timeout, what)
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(c.at)
}

// flowing reports a condition that holds once the collector got more
// than it had when flowing was called, or everything.
func flowing(col *collector) func() bool {
	before := delivered(col)
	return func() bool { d := delivered(col); return d > before || d >= faultItems }
}

// inFlow checks that the fault hit the flow: when it was noticed, items
// were still missing. A fault after the last item proves nothing.
func (e *faultEnv) inFlow(col *collector) {
	if d := delivered(col); d >= faultItems {
		e.t.Errorf("%s: all %d items were delivered before the fault was noticed: it did not hit the flow", e.row.fault, d)
	}
}

// --- the faults -------------------------------------------------------------

// faultConfig is gatewayConfig paced for the matrix.
func faultConfig(t *testing.T, p *harness.Prosody, q queues) *gateway.Config {
	cfg := gatewayConfig(t, p, q)
	cfg.Outbound.Rate = faultRate
	cfg.AMQP.Prefetch = faultPrefetch
	return cfg
}

// faultSetup is a Prosody with alice online through a collector, queues on
// the private node holding faultItems items for her, and a gateway config
// paced at faultRate.
// The last faultHeld items are published only when the row calls
// e.more, after the fault was noticed: the fault falls inside the flow by
// construction, whatever the machine's speed.
func (e *faultEnv) backlog(tag string) (*harness.Prosody, *collector, queues, []string) {
	p, col, q, texts := backlog(e.t, tag, faultItems-faultHeld)
	bodies, more := numberedItems(e.t, tag, p.JID("alice"), faultItems)
	e.more = func() {
		e.t.Helper()
		publishItems(e.t, q.out, tag+"-held-", bodies[faultItems-faultHeld:])
	}
	return p, col, q, append(texts, more[faultItems-faultHeld:]...)
}

func faultProsodyRestart(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("restart")
	cfg := faultConfig(t, p, q)
	gw := startGateway(t, cfg)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	c := inject()
	p.Stop(t)
	e.row.detect = c.until(t, 30*time.Second, "the gateway to notice", func() bool { return !gw.Ready() })
	e.inFlow(col)
	e.more()
	p.Start(t)
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	e.settleOutbound(col, texts, 60*time.Second)
	if r := metricValue(t, gw, `xmppgw_reconnects_total{link="xmpp"}`); r < 1 {
		t.Errorf("xmpp reconnects = %v, want ≥ 1", r)
	}
}

// faultProsodyKillOffline: the recipient is offline, so Prosody's offline
// storage is the only copy of what the gateway acknowledged. The gateway
// acks an item once Prosody answered the barrier that follows it; Prosody
// stores an offline message before it handles the next stanza of the
// stream, and writes it to its data files (the OS's page cache) at once,
// so a SIGKILL of the server process loses nothing acknowledged. (A crash
// of the machine could: Prosody's internal storage does not fsync.)
func faultProsodyKillOffline(e *faultEnv) {
	t := e.t
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	q := newQueues(t)
	bodies, texts := numberedItems(t, "offline", p.JID("alice"), faultItems)
	q.declare(t)
	publishItems(t, q.out, "offline-", bodies)
	cfg := faultConfig(t, p, q)
	gw := startGateway(t, cfg)
	sent := func() float64 { return metricOrZero(t, gw, `xmppgw_outbound_items_total{result="sent"}`) }
	waitFor(t, 60*time.Second, "items stored offline", func() bool { return sent() >= faultAt })
	c := inject()
	before := sent()
	p.Kill(t)
	e.row.detect = c.until(t, 30*time.Second, "the gateway to notice", func() bool { return !gw.Ready() })
	p.Start(t)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gw.Ready() && sent() > before })
	waitFor(t, 60*time.Second, "every item sent", func() bool { return harness.QueueLen(t, q.out) == 0 && sent() >= faultItems })
	// Only now does alice come online: everything she gets comes from
	// Prosody's offline storage.
	col := collect(t, p, "alice", "alice-pass")
	e.settleOutbound(col, texts, 60*time.Second)
	_, _, dials := col.counts()
	e.row.note = fmt.Sprintf("killed after %.0f acked; %d logins", before, dials)
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(p.Dir, "localhost", "offline", "alice.list"))
		t.Logf("alice's offline store (%d bytes) ends with:\n%s", len(b), tailString(string(b), 1000))
	}
}

func faultBrokerConnectionsClosed(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("closed")
	cfg := faultConfig(t, p, q)
	gw := startGateway(t, cfg)
	in := newInFlow(t, p, "bob", "in-closed")
	in.send(t, faultInbound)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	reconnects := metricOrZero(t, gw, `xmppgw_reconnects_total{link="amqp"}`)
	pids, err := e.node.Connections(q.out)
	if err != nil || len(pids) < 2 {
		t.Fatalf("found %d broker connections of the gateway (want consumer and publisher): %v", len(pids), err)
	}
	c := inject()
	if err := e.node.CloseConnectionPIDs(pids); err != nil {
		t.Fatal(err)
	}
	in.send(t, faultInbound) // while the gateway reconnects
	e.row.detect = c.until(t, 30*time.Second, "the gateway to notice", func() bool {
		return metricOrZero(t, gw, `xmppgw_reconnects_total{link="amqp"}`) > reconnects || metricValue(t, gw, `xmppgw_connected{link="amqp"}`) == 0
	})
	e.inFlow(col)
	resumed := flowing(col)
	e.more()
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	in.send(t, faultInbound)
	e.settleOutbound(col, texts, 60*time.Second)
	e.account(in, q.in, 30*time.Second)
}

func faultBrokerRestart(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("brestart")
	cfg := faultConfig(t, p, q)
	gw := startGateway(t, cfg)
	in := newInFlow(t, p, "bob", "in-brestart")
	in.send(t, faultInbound)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	c := inject()
	e.node.StopApp(t)
	e.row.detect = c.until(t, 30*time.Second, "the gateway to notice", func() bool { return metricValue(t, gw, `xmppgw_connected{link="amqp"}`) == 0 })
	e.inFlow(col)
	in.send(t, faultInbound) // while the broker is down: all refused
	e.node.StartApp(t)
	e.more()
	resumed := flowing(col)
	e.row.recover = c.until(t, 90*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	in.send(t, faultInbound)
	e.settleOutbound(col, texts, 60*time.Second)
	e.account(in, q.in, 30*time.Second)
	if e.row.inRef == 0 {
		t.Errorf("no inbound message refused while the broker was down")
	}
}

// faultXMPPStall stalls the gateway's component connection in both
// directions while items flow: the keepalive (2 s) must notice. The
// stalled connection stays open on Prosody's side (which refuses a second
// connection for the component meanwhile, as after a real network stall)
// until the proxy cuts it, once the gateway has given up on it.
func faultXMPPStall(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("xstall")
	proxy := harness.StartProxy(t, p.ComponentAddr)
	cfg := faultConfig(t, p, q)
	cfg.XMPP.Server = proxy.Addr
	cfg.XMPP.Keepalive = 2 * time.Second
	gw := startGateway(t, cfg)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	c := inject()
	proxy.Stall(harness.Both)
	e.row.detect = c.until(t, 30*time.Second, "the keepalive to notice", func() bool { return !gw.Ready() })
	e.inFlow(col)
	e.more()
	proxy.Cut() // the server finally drops the dead connection
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	e.settleOutbound(col, texts, 60*time.Second)
	e.row.note = "keepalive 2s"
}

// faultBrokerStall stalls both of the gateway's broker connections: the
// AMQP heartbeat must notice. The gateway asks for 10 s and has no setting
// for it; the private node offers 2 s and the smaller wins.
func faultBrokerStall(e *faultEnv) {
	t := e.t
	p, col, q, texts := e.backlog("bstall")
	proxy := harness.StartProxy(t, strings.TrimPrefix(strings.TrimSuffix(e.node.URL, "/"), "amqp://guest:guest@"))
	cfg := gatewayConfig(t, p, q)
	cfg.AMQP.URL = fmt.Sprintf("amqp://guest:guest@%s/", proxy.Addr)
	cfg.Outbound.Rate = faultRate
	gw := startGateway(t, cfg)
	in := newInFlow(t, p, "bob", "in-bstall")
	in.send(t, faultInbound)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	c := inject()
	proxy.Stall(harness.Both)
	in.send(t, faultInbound) // into the stalled link: refused, or queued after the heal
	e.row.detect = c.until(t, 60*time.Second, "the heartbeat to notice", func() bool { return metricValue(t, gw, `xmppgw_connected{link="amqp"}`) == 0 })
	e.inFlow(col)
	e.more()
	proxy.Cut()
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gw.Ready() && resumed() })
	in.send(t, faultInbound)
	e.settleOutbound(col, texts, 60*time.Second)
	e.account(in, q.in, 40*time.Second)
	e.row.note = "heartbeat 4s (broker's)"
}

// faultGatewaySignal stops the gateway process with sig while items flow
// out and messages flow in, then starts it again.
func faultGatewaySignal(e *faultEnv, sig syscall.Signal) {
	t := e.t
	tag := strings.ToLower(strings.TrimPrefix(sig.String(), "SIG"))
	if sig == syscall.SIGKILL {
		tag = "kill"
		e.row.inLossAllowed = true
	} else {
		tag = "term"
	}
	p, col, q, texts := e.backlog("gw" + tag)
	gp := newGatewayProcess(t, p, q, "rate")
	gp.start(t)
	in := newInFlow(t, p, "bob", "in-"+tag)
	waitFor(t, 30*time.Second, "gateway ready", gp.ready)
	in.send(t, faultInbound)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	c := inject()
	if err := gp.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := gp.cmd.Wait()
	e.row.detectNA = true
	e.inFlow(col)
	e.more()
	if sig == syscall.SIGTERM {
		if code := gp.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code after SIGTERM = %d (%v), want 0", code, err)
		}
		if b, _ := os.ReadFile(gp.log.Name()); !strings.Contains(string(b), "stopped") {
			t.Errorf("log has no stop line")
		}
		e.row.note = fmt.Sprintf("stopped in %s, exit 0", time.Since(c.at).Round(10*time.Millisecond))
	}
	in.send(t, faultInbound) // while no gateway runs: the server bounces them
	gp.start(t)
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", func() bool { return gp.ready() && resumed() })
	in.send(t, faultInbound)
	e.settleOutbound(col, texts, 60*time.Second)
	e.account(in, q.in, 30*time.Second)
}

// faultStandbyTakeover runs two gateway processes on the same component
// and queues; the active one is SIGKILLed under load.
func faultStandbyTakeover(e *faultEnv) {
	t := e.t
	e.row.inLossAllowed = true
	p, col, q, texts := e.backlog("standby")
	active := newGatewayProcess(t, p, q, "rate")
	active.start(t)
	waitFor(t, 30*time.Second, "active gateway ready", active.ready)
	standby := newGatewayProcess(t, p, q, "rate")
	standby.start(t)
	in := newInFlow(t, p, "bob", "in-standby")
	in.send(t, faultInbound)
	waitFor(t, 60*time.Second, "items flowing", func() bool { return delivered(col) >= faultAt })
	if standby.ready() {
		t.Fatal("the standby is ready while the active gateway holds the component")
	}
	c := inject()
	if err := active.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = active.cmd.Wait()
	in.send(t, faultInbound)
	e.row.detect = c.until(t, 60*time.Second, "the standby to take over", standby.ready)
	e.inFlow(col)
	e.more()
	resumed := flowing(col)
	e.row.recover = c.until(t, 60*time.Second, "the flow to resume", resumed)
	in.send(t, faultInbound)
	e.settleOutbound(col, texts, 60*time.Second)
	e.account(in, q.in, 30*time.Second)
	e.row.note = "detect = standby ready"
}

// --- the gateway as a process ---------------------------------------------

// gatewayProcess runs the xmppgw binary with a config file.
type gatewayProcess struct {
	bin, cfg string
	httpAddr string
	cmd      *exec.Cmd
	log      *os.File
}

// newGatewayProcess writes a component-mode config for p and q (its own
// store and HTTP port) and registers a cleanup that stops the process and
// logs its output if the test failed. opts: "rate" (outbound paced at
// faultRate), "store=URL" (presence.store), "lease=TTL"
// (presence.lease_ttl), "server=host:port" (xmpp.server).
func newGatewayProcess(t *testing.T, p *harness.Prosody, q queues, opts ...string) *gatewayProcess {
	t.Helper()
	dir := t.TempDir()
	gp := &gatewayProcess{bin: harness.BuildBinary(t), cfg: filepath.Join(dir, "xmppgw.yaml"),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))}
	yaml := fmt.Sprintf(`xmpp:
  server: %s
  domain: %s
  secret: %s
  keepalive: 5s
amqp:
  url: %s
  out_queue: %s
  in_queue: %s
  dead_letter_queue: %s
presence:
  store: %s
http:
  listen: %s
`, p.ComponentAddr, p.ComponentDomain, p.Secret, harness.BrokerURL(t), q.out, q.in, q.dead, filepath.Join(dir, "xmppgw.db"), gp.httpAddr)
	for _, o := range opts {
		switch k, v, _ := strings.Cut(o, "="); k {
		case "rate":
			yaml += fmt.Sprintf("outbound:\n  rate: %d\n", faultRate)
			yaml = strings.Replace(yaml, "amqp:\n", fmt.Sprintf("amqp:\n  prefetch: %d\n", faultPrefetch), 1)
		case "store": // presence.store
			yaml = strings.Replace(yaml, "  store: "+filepath.Join(dir, "xmppgw.db"), "  store: '"+v+"'", 1)
		case "lease": // presence.lease_ttl
			yaml = strings.Replace(yaml, "presence:\n", "presence:\n  lease_ttl: "+v+"\n", 1)
		case "server": // xmpp.server
			yaml = strings.Replace(yaml, "  server: "+p.ComponentAddr, "  server: "+v, 1)
		case "keepalive": // xmpp.keepalive
			yaml = strings.Replace(yaml, "  keepalive: 5s\n", "  keepalive: "+v+"\n", 1)
		case "limit": // amqp.delivery_limit
			yaml = strings.Replace(yaml, "amqp:\n", "amqp:\n  delivery_limit: "+v+"\n", 1)
		}
	}
	if err := os.WriteFile(gp.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	gp.log = logf
	t.Cleanup(func() {
		if gp.cmd != nil && gp.cmd.ProcessState == nil {
			_ = gp.cmd.Process.Signal(syscall.SIGTERM)
			_ = gp.cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("gateway log:\n%s", tailString(string(b), 16<<10))
		}
		logf.Close()
	})
	return gp
}

func (gp *gatewayProcess) start(t *testing.T) {
	t.Helper()
	gp.cmd = exec.Command(gp.bin, "run", "-c", gp.cfg)
	gp.cmd.Stdout = gp.log
	gp.cmd.Stderr = gp.log
	if err := gp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// ready reports whether the process answers /readyz with 200.
func (gp *gatewayProcess) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + gp.httpAddr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
