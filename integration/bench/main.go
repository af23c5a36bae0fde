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
	var (
		what      = flag.String("what", "out,in", "comma-separated: out, in")
		baseline  = flag.Bool("baseline", true, "also measure the thinnest possible bridge the same way")
		n         = flag.Int("n", 200000, "items measured per run")
		nIn       = flag.Int("n-in", 0, "inbound events measured per run (default -n)")
		warm      = flag.Int("warmup", 10000, "items sent before the measured ones in each run")
		runs      = flag.Int("runs", 3, "runs of each measurement (best and median are reported)")
		prefetch  = flag.Int("prefetch", 1000, "amqp.prefetch of the gateway and the baseline")
		receivers = flag.Int("receivers", 4, "online clients receiving the outbound items")
		senders   = flag.Int("senders", 4, "clients sending the inbound messages")
		qtype     = flag.String("queue-type", "classic", "amqp.queue_type: classic or quorum")
		logLevel  = flag.String("log-level", "warn", "log.level of the gateway")
		stall     = flag.Duration("stall", 30*time.Second, "fail when nothing moves for this long")
		verbose   = flag.Bool("v", true, "progress lines on stderr")
		gwRev     = flag.String("gw-rev", "HEAD", "git revision of the gateway to build, or \"worktree\"")
		gwBin     = flag.String("gw-bin", "", "gateway binary to use instead of building one")
		linger    = flag.Duration("baseline-linger", 0, "experiment: the outbound baseline waits up to this long for more deliveries before each write")
		perfDir   = flag.String("perf", "", "record the bridge with `perf record -g` during each measured window into this directory")
	)
	// Internal: "-role bridge-out|bridge-in FLAGS" runs the baseline bridge
	// (the benchmark starts itself as a separate process for it).
	if len(os.Args) > 2 && os.Args[1] == "-role" {
		if err := e2e.RunBridge(os.Args[2], os.Args[3:]); err != nil {
			fmt.Fprintln(os.Stderr, "bridge:", err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	if *nIn == 0 {
		*nIn = *n
	}
	logf := func(format string, a ...any) {
		if *verbose {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", a...)
		}
	}
	opt := e2e.Options{Receivers: *receivers, Senders: *senders, Prefetch: *prefetch, QueueType: *qtype,
		LogLevel: *logLevel, Stall: *stall, Logf: logf,
		GatewayRev: *gwRev, GatewayBin: *gwBin, PerfDir: *perfDir, BaselineLinger: *linger}
	if *baseline {
		self, err := os.Executable()
		if err != nil {
			fail(err)
		}
		opt.BridgeCmd = []string{self}
	}
	env, err := e2e.Setup(opt)
	if err != nil {
		fail(err)
	}
	var (
		results []e2e.Result
		errs    []error
	)
	do := func(name string, f func(run int) (e2e.Result, error)) {
		for run := 1; run <= *runs; run++ {
			r, err := f(run)
			if err != nil {
				logf("%s run %d: ERROR: %v", name, run, err)
				errs = append(errs, fmt.Errorf("%s run %d: %w", name, run, err))
				if errors.Is(err, e2e.ErrLost) {
					return
				}
				continue
			}
			logf("%s run %d: %.0f items/s, bridge %.2f µs/item, prosody %.2f µs/item", name, run, r.Rate, r.BridgeCPU, r.ProsodyCPU)
			results = append(results, r)
		}
	}
	for _, w := range strings.Split(*what, ",") {
		switch strings.TrimSpace(w) {
		case "out":
			// Interleave gateway and baseline so that both see the same
			// machine load.
			do("outbound", func(run int) (e2e.Result, error) { return env.Outbound(run, *n, *warm) })
			if *baseline {
				do("baseline-out", func(run int) (e2e.Result, error) { return env.BaselineOut(run, *n, *warm) })
			}
		case "in":
			do("inbound", func(run int) (e2e.Result, error) { return env.Inbound(run, *nIn, *warm) })
			if *baseline {
				do("baseline-in", func(run int) (e2e.Result, error) { return env.BaselineIn(run, *nIn, *warm) })
			}
		default:
			fail(fmt.Errorf("-what: unknown %q", w))
		}
	}
	env.Close()

	fmt.Println()
	fmt.Printf("gateway %s, %d CPUs, load average %s\n", env.GatewayRev, runtime.NumCPU(), loadAvg())
	e2e.PrintRuns(os.Stdout, results)
	ss := e2e.Summarize(results)
	e2e.PrintSummary(os.Stdout, ss)
	meta := map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339), "n": *n, "n_in": *nIn, "warmup": *warm, "prefetch": *prefetch,
		"receivers": *receivers, "senders": *senders, "queue_type": *qtype, "cpus": runtime.NumCPU(),
		"loadavg": loadAvg(), "gateway_rev": env.GatewayRev,
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	meta["errors"] = msgs
	fmt.Println()
	fmt.Println(e2e.JSONLine(meta, results, ss))
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "ERROR:", e)
		}
		os.Exit(1)
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
