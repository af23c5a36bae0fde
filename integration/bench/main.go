// Command bench measures xmppgw end to end on a private Prosody and the
// machine's RabbitMQ, and prints items per second and CPU µs per item of
// the gateway, Prosody and the clients, against the founders' references
// and (with -baseline) against the thinnest possible bridge measured on the
// same machine at the same time.
//
//	go run ./integration/bench                      # outbound, inbound, baseline, 3 runs each
//	go run ./integration/bench -what out -n 50000 -runs 1
//
// It exits non-zero only when something failed or items were lost, never
// because of slowness: it is a measurement, not a test.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"xmppgw/integration/bench/e2e"
)

func main() {
	// Internal: "-role bridge-out|bridge-in FLAGS" runs the baseline bridge
	// (the benchmark starts itself as a separate process for it).
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
	baseline, verbose     bool
	n, nIn, warm, runs    int
	prefetch              int
	receivers, senders    int
	qtype, logLevel       string
	stall, linger         time.Duration
	gwRev, gwBin, perfDir string
}

func parseFlags() *config {
	c := &config{}
	flag.StringVar(&c.what, "what", "out,in", "comma-separated: out, in, in-receipts (inbound with a XEP-0184 request on every message)")
	flag.BoolVar(&c.baseline, "baseline", true, "also measure the thinnest possible bridge the same way")
	flag.IntVar(&c.n, "n", 200000, "items measured per run")
	flag.IntVar(&c.nIn, "n-in", 0, "inbound events measured per run (default -n)")
	flag.IntVar(&c.warm, "warmup", 10000, "items sent before the measured ones in each run")
	flag.IntVar(&c.runs, "runs", 3, "runs of each measurement (best and median are reported)")
	flag.IntVar(&c.prefetch, "prefetch", 1000, "amqp.prefetch of the gateway and the baseline")
	flag.IntVar(&c.receivers, "receivers", 4, "online clients receiving the outbound items")
	flag.IntVar(&c.senders, "senders", 4, "clients sending the inbound messages")
	flag.StringVar(&c.qtype, "queue-type", "classic", "amqp.queue_type: classic or quorum")
	flag.StringVar(&c.logLevel, "log-level", "warn", "log.level of the gateway")
	flag.DurationVar(&c.stall, "stall", 30*time.Second, "fail when nothing moves for this long")
	flag.BoolVar(&c.verbose, "v", true, "progress lines on stderr")
	flag.StringVar(&c.gwRev, "gw-rev", "HEAD", "git revision of the gateway to build, or \"worktree\"")
	flag.StringVar(&c.gwBin, "gw-bin", "", "gateway binary to use instead of building one")
	flag.DurationVar(&c.linger, "baseline-linger", 0, "experiment: the outbound baseline waits up to this long for more deliveries before each write")
	flag.StringVar(&c.perfDir, "perf", "", "record the bridge with `perf record -g` during each measured window into this directory")
	flag.Parse()
	if c.nIn == 0 {
		c.nIn = c.n
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
	if c.baseline {
		self, err := os.Executable()
		if err != nil {
			return opt, err
		}
		opt.BridgeCmd = []string{self}
	}
	return opt, nil
}

func run() int {
	c := parseFlags()
	opt, err := c.options()
	if err != nil {
		return fail(err)
	}
	env, err := e2e.Setup(opt)
	if err != nil {
		return fail(err)
	}
	m := &measurements{c: c}
	for _, w := range strings.Split(c.what, ",") {
		switch strings.TrimSpace(w) {
		case "out":
			// Interleave gateway and baseline so that both see the same
			// machine load.
			m.measure("outbound", func(run int) (e2e.Result, error) { return env.Outbound(run, c.n, c.warm) })
			if c.baseline {
				m.measure("baseline-out", func(run int) (e2e.Result, error) { return env.BaselineOut(run, c.n, c.warm) })
			}
		case "in":
			m.measure("inbound", func(run int) (e2e.Result, error) { return env.Inbound(run, c.nIn, c.warm) })
			if c.baseline {
				m.measure("baseline-in", func(run int) (e2e.Result, error) { return env.BaselineIn(run, c.nIn, c.warm) })
			}
		case "in-receipts":
			m.measure("inbound-receipts", func(run int) (e2e.Result, error) { return env.InboundReceipts(run, c.nIn, c.warm) })
		default:
			return fail(fmt.Errorf("-what: unknown %q", w))
		}
	}
	env.Close()
	m.print(env.GatewayRev)
	if len(m.errs) > 0 {
		for _, e := range m.errs {
			fmt.Fprintln(os.Stderr, "ERROR:", e)
		}
		return 1
	}
	return 0
}

// measurements collects the results and errors of every run.
type measurements struct {
	c       *config
	results []e2e.Result
	errs    []error
}

// measure runs f -runs times; a loss ends the series.
func (m *measurements) measure(name string, f func(run int) (e2e.Result, error)) {
	for run := 1; run <= m.c.runs; run++ {
		r, err := f(run)
		if err != nil {
			m.c.logf("%s run %d: ERROR: %v", name, run, err)
			m.errs = append(m.errs, fmt.Errorf("%s run %d: %w", name, run, err))
			if errors.Is(err, e2e.ErrLost) {
				return
			}
			continue
		}
		m.c.logf("%s run %d: %.0f items/s, bridge %.2f µs/item, prosody %.2f µs/item", name, run, r.Rate, r.BridgeCPU, r.ProsodyCPU)
		m.results = append(m.results, r)
	}
}

// print writes the table of runs, the summary and the JSON line on stdout.
func (m *measurements) print(gatewayRev string) {
	c := m.c
	fmt.Println()
	fmt.Printf("gateway %s, %d CPUs, load average %s\n", gatewayRev, runtime.NumCPU(), loadAvg())
	e2e.PrintRuns(os.Stdout, m.results)
	ss := e2e.Summarize(m.results)
	e2e.PrintSummary(os.Stdout, ss)
	meta := map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339), "n": c.n, "n_in": c.nIn, "warmup": c.warm, "prefetch": c.prefetch,
		"receivers": c.receivers, "senders": c.senders, "queue_type": c.qtype, "cpus": runtime.NumCPU(),
		"loadavg": loadAvg(), "gateway_rev": gatewayRev,
	}
	var msgs []string
	for _, e := range m.errs {
		msgs = append(msgs, e.Error())
	}
	meta["errors"] = msgs
	fmt.Println()
	fmt.Println(e2e.JSONLine(meta, m.results, ss))
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}
