package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"xmppgw/integration/bench/e2e"
)

// series is one entry of -what: its variants (gateway, bridge, raw) run in
// turn within each run, so that they share the machine's load.
type series struct {
	name     string
	runs     int
	variants []variant
	close    func() // after the runs
}

type variant struct {
	kind string
	f    func(run int) (e2e.Result, error)
}

// plan turns -what into series. With env nil it only checks the names.
func (c *config) plan(env *e2e.Env) ([]series, error) {
	var ss []series
	e := env
	add := func(on bool, vs *[]variant, kind string, f func(run int) (e2e.Result, error)) {
		if on {
			*vs = append(*vs, variant{kind, f})
		}
	}
	for _, w := range c.kinds() {
		var vs []variant
		var closers []func()
		runs := c.runs
		switch w {
		case "out":
			add(true, &vs, "outbound", func(r int) (e2e.Result, error) { return e.Outbound(r, c.n, c.warm) })
			add(c.baseline, &vs, "baseline-out", func(r int) (e2e.Result, error) { return e.BaselineOut(r, c.n, c.warm) })
			add(c.raw, &vs, "raw-out", func(r int) (e2e.Result, error) { return e.RawOut(r, c.n, c.warm) })
		case "in":
			add(true, &vs, "inbound", func(r int) (e2e.Result, error) { return e.Inbound(r, c.nIn, c.warm) })
			add(c.baseline, &vs, "baseline-in", func(r int) (e2e.Result, error) { return e.BaselineIn(r, c.nIn, c.warm) })
			add(c.raw, &vs, "raw-in", func(r int) (e2e.Result, error) { return e.RawIn(r, c.nIn, c.warm) })
		case "in-receipts":
			add(true, &vs, "inbound-receipts", func(r int) (e2e.Result, error) { return e.InboundReceipts(r, c.nIn, c.warm) })
		case "latency":
			runs = 1
			d, rate := c.latency, c.latencyRate
			add(true, &vs, "latency-out", func(r int) (e2e.Result, error) { return e.LatencyOut(r, d, rate) })
			add(c.baseline, &vs, "baseline-latency-out", func(r int) (e2e.Result, error) { return e.BaselineLatencyOut(r, d, rate) })
			add(true, &vs, "latency-in", func(r int) (e2e.Result, error) { return e.LatencyIn(r, d, rate) })
			add(c.baseline, &vs, "baseline-latency-in", func(r int) (e2e.Result, error) { return e.BaselineLatencyIn(r, d, rate) })
		case "backlog":
			runs = 1
			kinds := []string{"backlog"}
			if c.baseline {
				kinds = append(kinds, "baseline-backlog")
			}
			var b *e2e.Backlog
			if e != nil {
				b = e.NewBacklog(c.backlog, kinds...)
			}
			add(true, &vs, "backlog", func(r int) (e2e.Result, error) { return b.Gateway(r) })
			add(c.baseline, &vs, "baseline-backlog", func(r int) (e2e.Result, error) { return b.Bridge(r) })
			closers = append(closers, func() {
				if b != nil {
					b.Close()
				}
			})
		case "servercost":
			runs = 1
			cost := &costEnv{c: c, base: e}
			for _, d := range []struct {
				on      bool
				variant string
			}{{c.raw, e2e.CostRaw}, {c.baseline, e2e.CostBridge}, {c.baseline, e2e.CostBridgeOriginID}, {true, e2e.CostGateway}} {
				add(d.on, &vs, "servercost-"+d.variant+"-out", func(r int) (e2e.Result, error) {
					ce, err := cost.get()
					if err != nil {
						return e2e.Result{}, err
					}
					return ce.ServerCostOut(d.variant, r, c.costN, c.costWarm)
				})
			}
			for _, d := range []struct {
				on      bool
				variant string
			}{{c.raw, e2e.CostRaw}, {c.baseline, e2e.CostBridge}, {true, e2e.CostGateway}} {
				add(d.on, &vs, "servercost-"+d.variant+"-in", func(r int) (e2e.Result, error) {
					ce, err := cost.get()
					if err != nil {
						return e2e.Result{}, err
					}
					return ce.ServerCostIn(d.variant, r, c.costN, c.costWarm)
				})
			}
			closers = append(closers, cost.close)
		default:
			return nil, fmt.Errorf("-what: unknown %q (want out, in, in-receipts, latency, backlog, servercost or all)", w)
		}
		ss = append(ss, series{name: w, runs: runs, variants: vs, close: func() {
			for _, f := range closers {
				f()
			}
		}})
	}
	return ss, nil
}

// costEnv is the environment of the servercost kind, a Prosody of its own
// under callgrind, started when first needed: it runs the gateway binary
// of base, with a stall timeout of at least 2 minutes.
type costEnv struct {
	c    *config
	base *e2e.Env
	env  *e2e.Env
	err  error
}

func (ce *costEnv) get() (*e2e.Env, error) {
	if ce.env != nil || ce.err != nil {
		return ce.env, ce.err
	}
	opt, err := ce.c.options()
	if err != nil {
		ce.err = err
		return nil, err
	}
	opt.Callgrind = true
	opt.GatewayBin = ce.base.GatewayBinary()
	opt.PerfDir = ""
	opt.Stall = max(opt.Stall, 2*time.Minute)
	ce.env, ce.err = e2e.Setup(opt)
	return ce.env, ce.err
}

func (ce *costEnv) close() {
	if ce.env != nil {
		ce.env.Close()
	}
}

// measurements collects the results and errors of every run.
type measurements struct {
	c       *config
	results []e2e.Result
	errs    []error
}

// measure runs the series: in run r the variants start at the r-th one,
// in turn, so that none always runs first. A loss ends that variant's
// series.
func (m *measurements) measure(s series) {
	defer s.close()
	lost := map[string]bool{}
	for run := 1; run <= s.runs; run++ {
		for i := range s.variants {
			v := s.variants[(i+run-1)%len(s.variants)]
			if lost[v.kind] {
				continue
			}
			r, err := v.f(run)
			if err != nil {
				m.c.logf("%s run %d: ERROR: %v", v.kind, run, err)
				m.errs = append(m.errs, fmt.Errorf("%s run %d: %w", v.kind, run, err))
				lost[v.kind] = errors.Is(err, e2e.ErrLost)
				continue
			}
			m.c.logf("%s", runLine(r))
			m.results = append(m.results, r)
		}
	}
}

// runLine is the progress line of one run.
func runLine(r e2e.Result) string {
	s := fmt.Sprintf("%s run %d: %d items in %.2f s, %.0f items/s; CPU µs/item: bridge %.2f, prosody %.2f, broker %.2f, clients %.2f; %.3f reads, %.3f writes/item; peak RSS %.1f MiB",
		r.Kind, r.Run, r.Items, r.Secs, r.Rate, r.BridgeCPU, r.ProsodyCPU, r.BrokerCPU, r.ClientsCPU, r.ReadsPerItem, r.WritesPerItem, r.PeakRSS)
	if r.LatItems > 0 {
		s += fmt.Sprintf("; latency p50 %.2f p99 %.2f max %.2f ms over %d", r.LatP50, r.LatP99, r.LatMax, r.LatItems)
	}
	if r.Dups > 0 || r.Refused > 0 || r.Errors > 0 {
		s += fmt.Sprintf("; %d duplicates, %.0f refused, %d error stanzas", r.Dups, r.Refused, r.Errors)
	}
	return s
}

// print writes the header, the table, the targets and the JSON line on
// stdout.
func (m *measurements) print(env *e2e.Env, took time.Duration) {
	c := m.c
	pf := fmt.Sprintf("%d (the gateway's default)", env.DefaultPrefetch)
	outIn := pf
	if c.prefetch > 0 {
		outIn = fmt.Sprint(c.prefetch)
	}
	fmt.Println()
	fmt.Printf("xmppgw end-to-end bench: gateway %s, queue type %s, %d CPUs, load average %s, took %s\n",
		env.GatewayRev, c.qtype, runtime.NumCPU(), loadAvg(), took.Round(time.Second))
	fmt.Printf("out/in: %d runs of %d items (+%d warm-up), prefetch %s; latency: %.0f items/s for %s, prefetch %s;\n",
		c.runs, c.n, c.warm, outIn, c.latencyRate, c.latency, pf)
	fmt.Printf("backlog: %d items, prefetch %s. Rates and CPU: medians over runs; RSS, refused: the worst run.\n", c.backlog, pf)
	if strings.Contains(","+c.what+",", ",servercost,") {
		fmt.Printf("servercost: %d items (+%d warm-up) per variant and direction, Prosody under callgrind, prefetch %s.\n", c.costN, c.costWarm, outIn)
	}
	fmt.Println()
	ss := e2e.Summarize(m.results)
	e2e.PrintTable(os.Stdout, ss)
	fmt.Println()
	ts := e2e.Targets(ss)
	e2e.PrintTargets(os.Stdout, ts)
	meta := map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339), "n": c.n, "n_in": c.nIn, "warmup": c.warm, "runs_out_in": c.runs,
		"prefetch": c.prefetch, "default_prefetch": env.DefaultPrefetch, "latency_s": c.latency.Seconds(),
		"latency_rate": c.latencyRate, "backlog": c.backlog, "what": c.what,
		"servercost_n": c.costN, "servercost_warmup": c.costWarm,
		"receivers": c.receivers, "senders": c.senders, "queue_type": c.qtype, "cpus": runtime.NumCPU(),
		"loadavg": loadAvg(), "gateway_rev": env.GatewayRev, "took_s": took.Seconds(), "targets": ts,
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
