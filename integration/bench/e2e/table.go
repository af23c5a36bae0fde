package e2e

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// The table: one line per kind of measurement, the gateway, the baseline
// bridge and the raw limit side by side; rates and CPU in a first part,
// memory, refusals and latency in a second, Prosody's instructions per
// item (servercost, under callgrind) in a third, then the targets of
// issue 14.

// tableRow names the kinds of one line.
// in: inbound (the refused column applies).
type tableRow struct {
	label, gw, bridge, raw string
	in                     bool
}

var tableRows = []tableRow{
	{"outbound", "outbound", "baseline-out", "raw-out", false},
	{"inbound", "inbound", "baseline-in", "raw-in", true},
	{"in-receipts", "inbound-receipts", "", "", true},
	{"latency-out", "latency-out", "baseline-latency-out", "", false},
	{"latency-in", "latency-in", "baseline-latency-in", "", true},
	{"backlog", "backlog", "baseline-backlog", "", false},
}

// cells are the summaries of one line (nil: not measured).
type cells struct {
	tableRow
	gw, br, raw *Summary
}

func lines(ss []Summary) []cells {
	by := map[string]*Summary{}
	for i := range ss {
		by[ss[i].Kind] = &ss[i]
	}
	var out []cells
	for _, r := range tableRows {
		c := cells{tableRow: r, gw: by[r.gw], br: by[r.bridge], raw: by[r.raw]}
		if c.gw != nil || c.br != nil || c.raw != nil {
			out = append(out, c)
		}
	}
	return out
}

// num formats v with prec decimals, "-" for none (s nil or v < 0).
func num(ok bool, v float64, prec int) string {
	if !ok || v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

// ratio formats a/b, "-" when either is missing.
func ratio(a, b *Summary, f func(*Summary) float64) string {
	if a == nil || b == nil || f(b) <= 0 || f(a) < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", f(a)/f(b))
}

// span is label centred in a run of dashes, width columns wide with a
// leading space.
func span(label string, width int) string {
	n := max(0, width-1-len([]rune(label))-2)
	l := n / 2
	return " " + strings.Repeat("-", l) + " " + label + " " + strings.Repeat("-", n-l)
}

func rate(s *Summary) float64    { return s.MedianRate }
func cpu(s *Summary) float64     { return s.MedianCPU }
func prosody(s *Summary) float64 { return s.ProsodyCPU }
func broker(s *Summary) float64  { return s.BrokerCPU }

// get returns f(s), -1 for no s.
func get(s *Summary, f func(*Summary) float64) float64 {
	if s == nil {
		return -1
	}
	return f(s)
}

// PrintTable writes the parts of the table (the third only with
// servercost kinds).
func PrintTable(w io.Writer, ss []Summary) {
	ls := lines(ss)
	if len(ls) == 0 {
		printCost(w, ss, false)
		return
	}
	const f1 = "%-12s%8s%8s%8s%7s%7s%8s%8s%7s%7s%7s%7s%9s%9s"
	row := func(a ...any) { fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(f1, a...), " ")) }
	fmt.Fprintf(w, "%-12s%s%s%s%s%s\n", "kind", span("items/s", 24), span("ratio", 14), span("CPU µs/item", 16),
		span("Prosody CPU µs/item", 28), span("RabbitMQ CPU µs", 18))
	row("", "raw", "bridge", "gateway", "gw/br", "br/raw", "gw", "bridge", "raw", "bridge", "gw", "gw/br", "bridge", "gw")
	for _, c := range ls {
		row(c.label,
			num(c.raw != nil, get(c.raw, rate), 0), num(c.br != nil, get(c.br, rate), 0), num(c.gw != nil, get(c.gw, rate), 0),
			ratio(c.gw, c.br, rate), ratio(c.br, c.raw, rate),
			num(c.gw != nil, get(c.gw, cpu), 1), num(c.br != nil, get(c.br, cpu), 1),
			num(c.raw != nil, get(c.raw, prosody), 1), num(c.br != nil, get(c.br, prosody), 1), num(c.gw != nil, get(c.gw, prosody), 1),
			ratio(c.gw, c.br, prosody),
			num(c.br != nil, get(c.br, broker), 1), num(c.gw != nil, get(c.gw, broker), 1))
	}
	fmt.Fprintln(w)
	const f2 = "%-12s%5s%9s%9s%9s%8s%8s  %-22s%-22s"
	row2 := func(a ...any) { fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(f2, a...), " ")) }
	fmt.Fprintf(w, "%-12s%5s%9s%s%s %s\n", "kind", "runs", "items", span("peak RSS MiB", 18), span("refused", 16),
		span("latency ms: p50 / p99 / max", 44))
	row2("", "", "", "gw", "bridge", "gw", "bridge", "gateway", "bridge")
	for _, c := range ls {
		runs, items := 0, 0
		for _, s := range []*Summary{c.gw, c.br, c.raw} {
			if s != nil {
				runs, items = max(runs, s.Runs), max(items, s.Items)
			}
		}
		rss := func(s *Summary) float64 { return s.PeakRSS }
		row2(c.label, fmt.Sprint(runs), fmt.Sprint(items),
			num(c.gw != nil, get(c.gw, rss), 1), num(c.br != nil, get(c.br, rss), 1),
			refused(c.in, c.gw), refused(c.in, c.br), latency(c.gw), latency(c.br))
	}
	printCost(w, ss, true)
}

// costRow names the kinds of a line of the third part (servercost).
type costRow struct {
	label, raw, bridge, bridgeOID, gw string
}

var costRows = []costRow{
	{"servercost-out", "servercost-raw-out", "servercost-baseline-out", "servercost-baseline-origin-out", "servercost-out"},
	{"servercost-in", "servercost-raw-in", "servercost-baseline-in", "", "servercost-in"},
}

func instr(s *Summary) float64 { return s.ProsodyInstr }

// ratio3 is ratio with three decimals (instruction counts are exact).
func ratio3(a, b *Summary, f func(*Summary) float64) string {
	if a == nil || b == nil || f(b) <= 0 || f(a) <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", f(a)/f(b))
}

// printCost writes the third part of the table: Prosody's instructions
// per item (thousands) with raw, the bridge, the bridge writing the
// gateway's origin-id and the gateway, their ratios, and the rates under
// callgrind, after a blank line with sep. Nothing when no servercost kind
// was run.
func printCost(w io.Writer, ss []Summary, sep bool) {
	by := map[string]*Summary{}
	for i := range ss {
		by[ss[i].Kind] = &ss[i]
	}
	const f = "%-16s%6s%9s%9s%9s%9s%8s%8s%11s%8s%8s%8s%8s"
	row := func(a ...any) { fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(f, a...), " ")) }
	header := false
	for _, r := range costRows {
		raw, br, oid, gw := by[r.raw], by[r.bridge], by[r.bridgeOID], by[r.gw]
		if raw == nil && br == nil && oid == nil && gw == nil {
			continue
		}
		if !header {
			if sep {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "%-22s%s%s%s\n", "kind", span("Prosody instructions/item, k", 36), span("ratio", 27),
				span("items/s under callgrind", 32))
			row("", "items", "raw", "bridge", "br+oid", "gateway", "gw/br", "br/raw", "gw/br+oid", "raw", "bridge", "br+oid", "gateway")
			header = true
		}
		items := 0
		for _, s := range []*Summary{raw, br, oid, gw} {
			if s != nil {
				items = max(items, s.Items)
			}
		}
		k := func(s *Summary) string { return num(s != nil && s.ProsodyInstr > 0, get(s, instr)/1000, 1) }
		rt := func(s *Summary) string { return num(s != nil, get(s, rate), 0) }
		row(r.label, fmt.Sprint(items), k(raw), k(br), k(oid), k(gw),
			ratio3(gw, br, instr), ratio3(br, raw, instr), ratio3(gw, oid, instr), rt(raw), rt(br), rt(oid), rt(gw))
	}
}

func refused(in bool, s *Summary) string {
	if s == nil || !in {
		return "-"
	}
	return fmt.Sprintf("%.0f", s.MaxRefused)
}

func latency(s *Summary) string {
	if s == nil || s.LatP99 <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f", s.LatP50, s.LatP99, s.LatMax)
}

// Target is one goal of issue 14 checked against the table.
type Target struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Known    bool   `json:"known"` // measured in this run
	Pass     bool   `json:"pass"`
}

// Targets checks the goals of issue 14 on the summaries of one run.
func Targets(ss []Summary) []Target {
	by := map[string]*Summary{}
	for i := range ss {
		by[ss[i].Kind] = &ss[i]
	}
	var ts []Target
	add := func(goal string, known, pass bool, format string, a ...any) {
		t := Target{Goal: goal, Known: known, Pass: known && pass}
		if known {
			t.Measured = fmt.Sprintf(format, a...)
		}
		ts = append(ts, t)
	}
	for _, d := range [][3]string{{"outbound", "outbound", "baseline-out"}, {"inbound", "inbound", "baseline-in"}} {
		g, b := by[d[1]], by[d[2]]
		ok := g != nil && b != nil && b.MedianRate > 0
		r := 0.0
		if ok {
			r = g.MedianRate / b.MedianRate
		}
		add(d[0]+" rate ≥ 0.97 × the bridge's", ok, r >= 0.97, "%.3f (%.0f vs %.0f items/s)", r, get(g, rate), get(b, rate))
	}
	for _, d := range [][3]string{{"outbound", "outbound", "baseline-out"}, {"inbound", "inbound", "baseline-in"}} {
		g, b := by[d[1]], by[d[2]]
		ok := g != nil && b != nil && g.MedianCPU >= 0 && b.MedianCPU > 0
		add(d[0]+" gateway CPU/item ≤ the bridge's", ok, ok && g.MedianCPU <= b.MedianCPU,
			"%.1f vs %.1f µs (%.2f×)", get(g, cpu), get(b, cpu), get(g, cpu)/get(b, cpu))
	}
	for _, d := range [][3]string{{"outbound", "outbound", "baseline-out"}, {"inbound", "inbound", "baseline-in"}} {
		g, b := by[d[1]], by[d[2]]
		ok := g != nil && b != nil && g.ProsodyCPU >= 0 && b.ProsodyCPU > 0
		add(d[0]+" Prosody CPU/item ≤ 1.05 × with the bridge", ok, ok && g.ProsodyCPU <= 1.05*b.ProsodyCPU,
			"%.1f vs %.1f µs (%.2f×)", get(g, prosody), get(b, prosody), get(g, prosody)/get(b, prosody))
	}
	for _, d := range [][4]string{{"outbound", "servercost-out", "servercost-baseline-out", "servercost-baseline-origin-out"},
		{"inbound", "servercost-in", "servercost-baseline-in", ""}} {
		g, b, o := by[d[1]], by[d[2]], by[d[3]]
		ok := g != nil && b != nil && g.ProsodyInstr > 0 && b.ProsodyInstr > 0
		extra := ""
		if ok && o != nil && o.ProsodyInstr > 0 {
			extra = fmt.Sprintf("; br+origin-id %.1fk: %.3f×", o.ProsodyInstr/1000, g.ProsodyInstr/o.ProsodyInstr)
		}
		add(d[0]+" Prosody instructions/item ≤ 1.05 × with the bridge", ok, ok && g.ProsodyInstr <= 1.05*b.ProsodyInstr,
			"%.1fk vs %.1fk (%.3f×)%s", get(g, instr)/1000, get(b, instr)/1000, get(g, instr)/get(b, instr), extra)
	}
	rss, where := -1.0, ""
	for _, k := range []string{"outbound", "inbound", "inbound-receipts", "latency-out", "latency-in", "backlog"} {
		if s := by[k]; s != nil && s.PeakRSS > rss {
			rss, where = s.PeakRSS, k
		}
	}
	add("gateway peak RSS ≤ 64 MiB (every run)", rss >= 0, rss <= 64, "%.1f MiB (%s)", rss, where)
	for _, k := range []string{"latency-out", "latency-in"} {
		s := by[k]
		add(k+" p99 ≤ 20 ms at the latency rate", s != nil && s.LatP99 > 0, s != nil && s.LatP99 <= 20,
			"p99 %.1f ms", get(s, func(s *Summary) float64 { return s.LatP99 }))
	}
	in := by["inbound"]
	add("0 refused in the inbound flood", in != nil, in != nil && in.MaxRefused == 0,
		"%.0f in the worst run", get(in, func(s *Summary) float64 { return s.MaxRefused }))
	return ts
}

// PrintTargets writes one line per target: PASS, FAIL or "n/a" (not
// measured in this run).
func PrintTargets(w io.Writer, ts []Target) {
	width := 0
	for _, t := range ts {
		width = max(width, utf8.RuneCountInString(t.Goal))
	}
	for _, t := range ts {
		st := "n/a "
		if t.Known {
			st = "FAIL"
			if t.Pass {
				st = "PASS"
			}
		}
		fmt.Fprintf(w, "%s  %-*s %s\n", st, width, t.Goal, t.Measured)
	}
}
