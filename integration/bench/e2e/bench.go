// Package e2e measures xmppgw end to end on a private Prosody and the
// RabbitMQ of the machine: items per second through the gateway and the
// CPU time the gateway, Prosody and the clients spend per item. It is used
// by the command ./integration/bench and by the Benchmark functions of
// ./integration.
package e2e

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/integration/harness"
	"xmppgw/queue"
)

// Reference figures of the founders on this 2-core machine.
const (
	RefOutPerSec   = 16700.0 // thinnest bridge, queue → component → client
	RefInPerSec    = 21000.0 // thinnest bridge, client → component → queue
	RefCPUPerItem  = 15.0    // µs of CPU per item of the thinnest bridge
	RefProsodyRate = 26000.0 // stanzas/s Prosody routes at most
)

// Options shapes a benchmark environment.
type Options struct {
	Receivers int    // online clients the outbound items go to
	Senders   int    // clients sending inbound messages
	Prefetch  int    // amqp.prefetch of the gateway and the baseline in Outbound and Inbound; 0: the gateway's default
	QueueType string // classic or quorum
	AMQPURL   string
	LogLevel  string // of the gateway
	Stall     time.Duration
	Logf      func(format string, a ...any)
	// BridgeCmd runs the baseline bridge: the command and leading args to
	// which "-role bridge-out|bridge-in" and its flags are appended. Empty:
	// no baseline.
	BridgeCmd []string
	// GatewayRev is the git revision of the gateway to build ("" or
	// "worktree": the working tree); GatewayBin a binary to use instead.
	GatewayRev, GatewayBin string
	// PerfDir: when set, the bridge process is recorded with `perf record
	// -g` during each measured window, into PerfDir/<kind>-<run>.data.
	PerfDir string
	// BaselineLinger: the outbound baseline waits up to this long for more
	// deliveries before a write (0: writes what is waiting), to try the
	// effect of bigger writes.
	BaselineLinger time.Duration
	// Callgrind: Prosody runs under valgrind's callgrind, instrumentation
	// off but in the measured windows of the ServerCost runs (slow: about
	// 140 items/s).
	Callgrind bool
}

// Env is a running benchmark environment: one Prosody with its clients,
// the broker connection, the gateway binary.
type Env struct {
	opt       Options
	dir       string
	Prosody   *harness.Prosody
	bin       string
	receivers []*rawClient
	senders   []*rawClient
	conn      *amqp.Connection
	brokerPID int
	// GatewayRev is the commit the gateway was built from ("worktree" with
	// uncommitted changes, "" for Options.GatewayBin).
	GatewayRev string
	// receipts: the senders ask for a XEP-0184 receipt (InboundReceipts).
	receipts bool
	// DefaultPrefetch is the gateway's default amqp.prefetch (from its
	// check-config), which the baseline uses where the gateway gets none.
	DefaultPrefetch int
	// epoch is the origin of clock.
	epoch time.Time
	// cg controls Prosody's callgrind (Options.Callgrind), else nil.
	cg *callgrind
}

// clock returns monotonic nanoseconds since Setup.
func (e *Env) clock() int64 { return int64(time.Since(e.epoch)) }

// Setup starts Prosody, registers and logs in the clients, connects to the
// broker and builds the gateway.
func Setup(opt Options) (_ *Env, err error) {
	opt = opt.withDefaults()
	dir, err := os.MkdirTemp("", "xmppgw-bench-")
	if err != nil {
		return nil, err
	}
	e := &Env{opt: opt, dir: dir, epoch: time.Now()}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if err := e.startProsody(); err != nil {
		return nil, err
	}
	if err := e.dialClients(); err != nil {
		return nil, err
	}
	e.conn, err = amqp.DialConfig(opt.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, fmt.Errorf("RabbitMQ not reachable (run .ci/setup): %w", err)
	}
	e.brokerPID = brokerPID(opt.AMQPURL)
	if err := e.gatewayBinary(); err != nil {
		return nil, err
	}
	if e.DefaultPrefetch, err = e.gatewayDefaultPrefetch(); err != nil {
		return nil, err
	}
	return e, nil
}

// withDefaults fills in the zero fields.
func (opt Options) withDefaults() Options {
	if opt.Receivers <= 0 {
		opt.Receivers = 4
	}
	if opt.Senders <= 0 {
		opt.Senders = 4
	}
	opt.Prefetch = max(opt.Prefetch, 0)
	if opt.QueueType == "" {
		opt.QueueType = queue.Classic
	}
	if opt.AMQPURL == "" {
		opt.AMQPURL = harness.AMQPURL()
	}
	if opt.LogLevel == "" {
		opt.LogLevel = "warn"
	}
	if opt.Stall <= 0 {
		opt.Stall = 30 * time.Second
	}
	if opt.Logf == nil {
		opt.Logf = func(string, ...any) {}
	}
	return opt
}

// receiver and sender are the users of the clients.
func receiver(i int) string { return fmt.Sprintf("r%d", i) }
func sender(i int) string   { return fmt.Sprintf("s%d", i) }

// startProsody starts Prosody in e.dir/prosody with the users of the
// receivers and the senders.
func (e *Env) startProsody() error {
	users := map[string]string{}
	for i := 0; i < e.opt.Receivers; i++ {
		users[receiver(i)] = "pass"
	}
	for i := 0; i < e.opt.Senders; i++ {
		users[sender(i)] = "pass"
	}
	pdir := filepath.Join(e.dir, "prosody")
	if err := os.Mkdir(pdir, 0o700); err != nil {
		return err
	}
	popt := harness.ProsodyOptions{Users: users}
	var cgDir string
	if e.opt.Callgrind {
		cgDir = filepath.Join(e.dir, "callgrind")
		if err := os.Mkdir(cgDir, 0o700); err != nil {
			return err
		}
		popt.Command = callgrindCommand(cgDir)
	}
	t0 := time.Now()
	var err error
	e.Prosody, err = harness.StartProsodyDir(pdir, popt)
	if err != nil {
		return err
	}
	how := ""
	if e.opt.Callgrind {
		e.cg = &callgrind{dir: cgDir, pid: e.Prosody.PID()}
		how = " under callgrind"
	}
	e.opt.Logf("prosody%s pid %d, c2s %s, component %s (started in %s)", how, e.Prosody.PID(), e.Prosody.C2SAddr, e.Prosody.ComponentAddr, time.Since(t0).Round(time.Millisecond))
	return nil
}

// dialClients logs in the receivers, then the senders.
func (e *Env) dialClients() error {
	ctx := context.Background()
	for i := 0; i < e.opt.Receivers; i++ {
		c, err := dialRaw(ctx, e.Prosody.C2SAddr, e.Prosody.JID(receiver(i)), "pass")
		if err != nil {
			return err
		}
		e.receivers = append(e.receivers, c)
	}
	for i := 0; i < e.opt.Senders; i++ {
		c, err := dialRaw(ctx, e.Prosody.C2SAddr, e.Prosody.JID(sender(i)), "pass")
		if err != nil {
			return err
		}
		e.senders = append(e.senders, c)
	}
	return nil
}

// gatewayBinary sets e.bin: Options.GatewayBin, or the gateway built from
// Options.GatewayRev.
func (e *Env) gatewayBinary() error {
	if e.opt.GatewayBin != "" {
		e.bin = e.opt.GatewayBin
		return nil
	}
	t0 := time.Now()
	var err error
	e.bin, err = BuildGateway(e.dir, e.opt.GatewayRev)
	if err != nil {
		return err
	}
	e.GatewayRev = gitRev(e.opt.GatewayRev)
	e.opt.Logf("gateway (%s) built in %s", cmp.Or(e.opt.GatewayRev, "worktree"), time.Since(t0).Round(time.Millisecond))
	return nil
}

// GatewayBinary is the gateway binary the runs start (for another Env's
// Options.GatewayBin).
func (e *Env) GatewayBinary() string { return e.bin }

// Close stops everything Setup started and removes its directory.
func (e *Env) Close() {
	for _, c := range append(e.receivers, e.senders...) {
		_ = c.Close()
	}
	if e.conn != nil {
		_ = e.conn.Close()
	}
	if e.Prosody != nil {
		_ = e.Prosody.Close()
	}
	_ = os.RemoveAll(e.dir)
}

// Result is one measurement.
type Result struct {
	Kind  string  `json:"kind"` // outbound, inbound, inbound-receipts, latency-out, latency-in, backlog; baseline-* and raw-* of these
	Run   int     `json:"run"`
	Items int     `json:"items"` // items in the measured window
	Secs  float64 `json:"secs"`  // the window: from the first measured item to the last one acknowledged / queued
	Rate  float64 `json:"items_per_s"`
	// RecvRate (outbound): first to last message received by the clients.
	RecvRate float64 `json:"recv_items_per_s,omitempty"`
	// CPU µs per item in the window; -1 if unknown.
	BridgeCPU  float64 `json:"bridge_cpu_us"` // the gateway or the baseline bridge
	ProsodyCPU float64 `json:"prosody_cpu_us"`
	ClientsCPU float64 `json:"clients_cpu_us"` // this process: clients and bookkeeping
	BrokerCPU  float64 `json:"broker_cpu_us"`  // the machine's RabbitMQ (shared with others)
	Dups       int64   `json:"duplicates"`
	Missing    int     `json:"missing"`
	Refused    float64 `json:"refused,omitempty"` // inbound: xmppgw_inbound_refused_total (or error replies)
	Errors     int64   `json:"errors,omitempty"`  // error stanzas the clients received
	Metrics    float64 `json:"counted,omitempty"`
	// PeakRSS is the bridge's peak resident set size in MiB (VmHWM just
	// before it was stopped); -1 if unknown.
	PeakRSS float64 `json:"bridge_peak_rss_mib"`
	// Latency runs: publication (outbound) or sending (inbound) to arrival
	// (at the client, or at a consumer of the in queue), in ms, over
	// LatItems items.
	LatItems int     `json:"latency_items,omitempty"`
	LatP50   float64 `json:"latency_p50_ms,omitempty"`
	LatP99   float64 `json:"latency_p99_ms,omitempty"`
	LatMax   float64 `json:"latency_max_ms,omitempty"`
	// ProsodyInstr (ServerCost runs): the instructions (callgrind's Ir)
	// Prosody executed in the window per item.
	ProsodyInstr float64 `json:"prosody_instructions_per_item,omitempty"`
	// Read and write syscalls of the bridge per item (/proc/<pid>/io).
	ReadsPerItem  float64 `json:"bridge_reads_per_item"`
	WritesPerItem float64 `json:"bridge_writes_per_item"` // the bridge's own count (xmppgw_outbound_items_total / inbound events)
}

func (e *Env) cpus(bridgePID int) *cpuSet {
	c := &cpuSet{}
	c.add("bridge", bridgePID)
	c.add("prosody", e.Prosody.PID())
	c.add("self", 0)
	if e.brokerPID > 0 {
		c.add("broker", e.brokerPID)
	} else {
		c.add("broker", -1)
	}
	return c
}

func (e *Env) fill(r *Result, c *cpuSet, a, b cpuSample) {
	r.Secs = b.at.Sub(a.at).Seconds()
	if r.Secs > 0 {
		r.Rate = float64(r.Items) / r.Secs
	}
	r.BridgeCPU = c.perItem("bridge", a, b, r.Items)
	r.ProsodyCPU = c.perItem("prosody", a, b, r.Items)
	r.ClientsCPU = c.perItem("self", a, b, r.Items)
	r.BrokerCPU = c.perItem("broker", a, b, r.Items)
	if r.Items > 0 && a.syscr >= 0 && b.syscr >= 0 {
		r.ReadsPerItem = float64(b.syscr-a.syscr) / float64(r.Items)
		r.WritesPerItem = float64(b.syscw-a.syscw) / float64(r.Items)
	}
}

// gitRev resolves rev (or HEAD for the working tree, marked "+worktree")
// to a commit hash.
func gitRev(rev string) string {
	root, err := harness.RepoDir()
	if err != nil {
		return rev
	}
	r, suffix := rev, ""
	if rev == "" || rev == "worktree" {
		r, suffix = "HEAD", "+worktree"
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", r).Output()
	if err != nil {
		return rev
	}
	return strings.TrimSpace(string(out)) + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// queues are the uniquely named queues of one run.
type queues struct{ out, in, dead string }

func (e *Env) newQueues(kind string) (queues, error) {
	tag := randomHex(4)
	q := queues{out: "bench-" + kind + "-out-" + tag, in: "bench-" + kind + "-in-" + tag, dead: "bench-" + kind + "-dead-" + tag}
	err := queue.Declare(e.conn, queue.Topology{OutQueue: q.out, InQueue: q.in, DeadLetterQueue: q.dead, QueueType: e.opt.QueueType})
	return q, err
}

func (e *Env) deleteQueues(q queues) {
	ch, err := e.conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, n := range []string{q.out, q.in, q.dead} {
		_, _ = ch.QueueDelete(n, false, false, false)
	}
}

// queueLen is the number of ready messages in the queue.
func queueLen(ch *amqp.Channel, name string) (int, error) {
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	return q.Messages, err
}

// idSet records which of n ids "<prefix><i>" arrived, from any goroutine.
type idSet struct {
	prefix []byte
	bits   []atomic.Uint32
	n      int
	dups   atomic.Int64
	stray  atomic.Int64
}

func newIDSet(prefix string, n int) *idSet {
	return &idSet{prefix: []byte(prefix), bits: make([]atomic.Uint32, (n+31)/32), n: n}
}

// add marks id and reports whether it is new.
func (s *idSet) add(id []byte) bool {
	_, ok := s.addIndex(id)
	return ok
}

// addIndex marks id and returns its number and whether it is new.
func (s *idSet) addIndex(id []byte) (int, bool) {
	if len(id) <= len(s.prefix) || string(id[:len(s.prefix)]) != string(s.prefix) {
		s.stray.Add(1)
		return 0, false
	}
	i := 0
	for _, c := range id[len(s.prefix):] {
		if c < '0' || c > '9' || i >= s.n {
			s.stray.Add(1)
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	if i >= s.n {
		s.stray.Add(1)
		return 0, false
	}
	bit := uint32(1) << (i % 32)
	if s.bits[i/32].Or(bit)&bit != 0 {
		s.dups.Add(1)
		return i, false
	}
	return i, true
}

// missing returns how many ids did not arrive and up to max of them.
func (s *idSet) missing(max int) (int, []string) {
	n := 0
	var some []string
	for i := 0; i < s.n; i++ {
		if s.bits[i/32].Load()&(1<<(i%32)) == 0 {
			n++
			if len(some) < max {
				some = append(some, string(s.prefix)+strconv.Itoa(i))
			}
		}
	}
	return n, some
}

// ErrLost is returned (wrapped) when items were lost.
var ErrLost = errors.New("ITEMS LOST")

// item bodies -----------------------------------------------------------

// outBody is the JSON of outbound item i for target: a ~100-byte text, a
// small payload and enqueued_at, as a worker would publish it.
func outBody(dst []byte, i int, target string, enq string) []byte {
	dst = append(dst, `{"target":"`...)
	dst = append(dst, target...)
	dst = append(dst, `","text":"Your order #`...)
	dst = strconv.AppendInt(dst, int64(100000+i), 10)
	dst = append(dst, ` has shipped and will arrive on Tuesday. Track it at https://example.org/t/`...)
	dst = strconv.AppendInt(dst, int64(100000+i), 10)
	dst = append(dst, `","payload":{"order":`...)
	dst = strconv.AppendInt(dst, int64(100000+i), 10)
	dst = append(dst, `,"sku":"AB-1234","qty":2},"enqueued_at":"`...)
	dst = append(dst, enq...)
	dst = append(dst, `"}`...)
	return dst
}

// progress tells a polling wait when a count has stopped moving.
type progress struct {
	last  int64
	at    time.Time
	stall time.Duration
}

func newProgress(stall time.Duration) progress {
	return progress{last: -1, at: time.Now(), stall: stall}
}

// stalled records the count got and reports whether it has not changed
// for the stall period.
func (p *progress) stalled(got int64) bool {
	if got != p.last {
		p.last, p.at = got, time.Now()
		return false
	}
	return time.Since(p.at) > p.stall
}
