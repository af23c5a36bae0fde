// Command bench measures xmppgw end to end on a private Prosody and the
// machine's RabbitMQ and prints one table: items per second and CPU µs per
// item of the gateway, of the thinnest possible bridge and of the raw
// limit (Prosody alone, no broker), Prosody's and RabbitMQ's CPU per item
// with each, peak RSS, refused events and latency, all measured in the
// same run on the same machine, then the targets of issue 14.
//
//	go run ./integration/bench                      # out, in, latency, backlog (10-22 min, see README.md)
//	go run ./integration/bench -what out -n 50000 -runs 1
//	go run ./integration/bench -what servercost     # Prosody's instructions per item under callgrind (2-4 min)
//
// It exits non-zero only when something failed or items were lost, never
// because of slowness or a missed target: it is a measurement, not a test.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"xmppgw/integration/bench/e2e"
)

func main() {
	// Internal: "-role bridge-out|bridge-in|raw-out|raw-in FLAGS" runs the
	// baseline bridge or the raw limit (the benchmark starts itself as a
	// separate process for them).
	if len(os.Args) > 2 && os.Args[1] == "-role" {
		if err := e2e.RunBridge(os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "bridge:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run())
}

// config is the command line.
type config struct {
	what                  string
	baseline, raw         bool
	verbose               bool
	n, nIn, warm, runs    int
	costN, costWarm       int
	prefetch              int
	latency               time.Duration
	latencyRate           float64
	backlog               int
	receivers, senders    int
	qtype, logLevel       string
	stall, linger         time.Duration
	gwRev, gwBin, perfDir string
}

// allKinds is what -what all means; the default leaves in-receipts out.
const (
	allKinds     = "out,in,in-receipts,latency,backlog,servercost"
	defaultKinds = "out,in,latency,backlog"
)

func parseFlags() *config {
	c := &config{}
	flag.StringVar(&c.what, "what", defaultKinds, "comma-separated: out, in, in-receipts (inbound with a XEP-0184 request on every message), latency, backlog, servercost (Prosody's instructions per item under callgrind); or all")
	flag.BoolVar(&c.baseline, "baseline", true, "also measure the thinnest possible bridge the same way")
	flag.BoolVar(&c.raw, "raw", true, "also measure the raw limit (Prosody alone, no broker) for out and in")
	flag.IntVar(&c.n, "n", 100000, "out and in: items measured per run")
	flag.IntVar(&c.nIn, "n-in", 0, "in: events measured per run (default -n)")
	flag.IntVar(&c.warm, "warmup", 10000, "out and in: items sent before the measured ones in each run")
	flag.IntVar(&c.runs, "runs", 3, "out and in: runs (gateway, bridge and raw interleaved; medians are reported)")
	flag.IntVar(&c.prefetch, "prefetch", 0, "out and in: amqp.prefetch of the gateway and the bridge (0: the gateway's default; latency and backlog always use it)")
	flag.IntVar(&c.costN, "servercost-n", 3000, "servercost: items measured per variant and direction (Prosody under callgrind moves ~140 items/s)")
	flag.IntVar(&c.costWarm, "servercost-warmup", 300, "servercost: items sent before the measured ones")
	flag.DurationVar(&c.latency, "latency", 20*time.Second, "latency: how long items are sent at -latency-rate, per direction")
	flag.Float64Var(&c.latencyRate, "latency-rate", 1000, "latency: items per second")
	flag.IntVar(&c.backlog, "backlog", 1000000, "backlog: items waiting in the out queue before the bridge starts")
	flag.IntVar(&c.receivers, "receivers", 4, "online clients receiving the outbound items")
	flag.IntVar(&c.senders, "senders", 4, "clients sending the inbound messages")
	flag.StringVar(&c.qtype, "queue-type", "classic", "amqp.queue_type of every queue of every kind: classic or quorum")
	flag.StringVar(&c.logLevel, "log-level", "warn", "log.level of the gateway")
	flag.DurationVar(&c.stall, "stall", 30*time.Second, "fail when nothing moves for this long (servercost: at least 2m)")
	flag.BoolVar(&c.verbose, "v", true, "progress lines on stderr")
	flag.StringVar(&c.gwRev, "gw-rev", "HEAD", "git revision of the gateway to build, or \"worktree\"")
	flag.StringVar(&c.gwBin, "gw-bin", "", "gateway binary to use instead of building one")
	flag.DurationVar(&c.linger, "baseline-linger", 0, "experiment: the outbound baseline waits up to this long for more deliveries before each write")
	flag.StringVar(&c.perfDir, "perf", "", "record the bridge with `perf record -g` during each measured window into this directory")
	flag.Parse()
	if c.nIn == 0 {
		c.nIn = c.n
	}
	if c.what == "all" {
		c.what = allKinds
	}
	return c
}

// logf writes a progress line on stderr with -v.
func (c *config) logf(format string, a ...any) {
	if c.verbose {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", a...)
	}
}

func (c *config) options() (e2e.Options, error) {
	opt := e2e.Options{Receivers: c.receivers, Senders: c.senders, Prefetch: c.prefetch, QueueType: c.qtype,
		LogLevel: c.logLevel, Stall: c.stall, Logf: c.logf,
		GatewayRev: c.gwRev, GatewayBin: c.gwBin, PerfDir: c.perfDir, BaselineLinger: c.linger}
	if c.baseline || c.raw {
		self, err := os.Executable()
		if err != nil {
			return opt, err
		}
		opt.BridgeCmd = []string{self}
	}
	return opt, nil
}

func run() int {
	t0 := time.Now()
	c := parseFlags()
	if c.qtype != "classic" && c.qtype != "quorum" {
		return fail(fmt.Errorf("-queue-type %q: want classic or quorum", c.qtype))
	}
	opt, err := c.options()
	if err != nil {
		return fail(err)
	}
	plan, err := c.plan(nil)
	if err != nil {
		return fail(err)
	}
	env, err := e2e.Setup(opt)
	if err != nil {
		return fail(err)
	}
	plan, _ = c.plan(env)
	m := &measurements{c: c}
	for _, s := range plan {
		m.measure(s)
	}
	env.Close()
	m.print(env, time.Since(t0))
	if len(m.errs) > 0 {
		for _, e := range m.errs {
			fmt.Fprintln(os.Stderr, "ERROR:", e)
		}
		return 1
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}

// kinds returns the entries of -what.
func (c *config) kinds() []string {
	var ks []string
	for _, w := range strings.Split(c.what, ",") {
		if w = strings.TrimSpace(w); w != "" {
			ks = append(ks, w)
		}
	}
	return ks
}
