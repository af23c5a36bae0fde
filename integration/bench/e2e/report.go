package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Summary is best and median of the runs of one kind.
type Summary struct {
	Kind       string  `json:"kind"`
	Runs       int     `json:"runs"`
	Items      int     `json:"items"`
	BestRate   float64 `json:"best_items_per_s"`
	MedianRate float64 `json:"median_items_per_s"`
	MedianRecv float64 `json:"median_recv_items_per_s,omitempty"`
	BestCPU    float64 `json:"best_bridge_cpu_us"`
	MedianCPU  float64 `json:"median_bridge_cpu_us"`
	ProsodyCPU float64 `json:"median_prosody_cpu_us"`
	ClientsCPU float64 `json:"median_clients_cpu_us"`
	BrokerCPU  float64 `json:"median_broker_cpu_us"`
	PctRate    float64 `json:"pct_of_ref_rate"` // median rate / reference rate × 100
	PctCPU     float64 `json:"pct_of_ref_cpu"`  // reference µs / median µs × 100 (100 = as lean as the reference)
	Dups       int64   `json:"duplicates"`
	Refused    float64 `json:"refused"`
	Errors     int64   `json:"error_stanzas"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Summarize groups results by kind, in order of first appearance.
func Summarize(rs []Result) []Summary {
	var kinds []string
	by := map[string][]Result{}
	for _, r := range rs {
		if _, ok := by[r.Kind]; !ok {
			kinds = append(kinds, r.Kind)
		}
		by[r.Kind] = append(by[r.Kind], r)
	}
	var out []Summary
	for _, k := range kinds {
		g := by[k]
		s := Summary{Kind: k, Runs: len(g), Items: g[0].Items, BestCPU: -1}
		var rate, recv, cpu, pc, cc, bc []float64
		for _, r := range g {
			rate = append(rate, r.Rate)
			if r.RecvRate > 0 {
				recv = append(recv, r.RecvRate)
			}
			cpu = append(cpu, r.BridgeCPU)
			pc = append(pc, r.ProsodyCPU)
			cc = append(cc, r.ClientsCPU)
			bc = append(bc, r.BrokerCPU)
			s.BestRate = max(s.BestRate, r.Rate)
			if r.BridgeCPU >= 0 && (s.BestCPU < 0 || r.BridgeCPU < s.BestCPU) {
				s.BestCPU = r.BridgeCPU
			}
			s.Dups += r.Dups
			s.Refused += r.Refused
			s.Errors += r.Errors
		}
		s.MedianRate, s.MedianRecv, s.MedianCPU = median(rate), median(recv), median(cpu)
		s.ProsodyCPU, s.ClientsCPU, s.BrokerCPU = median(pc), median(cc), median(bc)
		ref := RefOutPerSec
		if strings.HasSuffix(k, "inbound") || strings.HasSuffix(k, "-in") {
			ref = RefInPerSec
		}
		s.PctRate = 100 * s.MedianRate / ref
		if s.MedianCPU > 0 {
			s.PctCPU = 100 * RefCPUPerItem / s.MedianCPU
		}
		out = append(out, s)
	}
	return out
}

// PrintRuns writes one aligned line per run.
func PrintRuns(w io.Writer, rs []Result) {
	fmt.Fprintf(w, "%-16s %3s %8s %7s %9s %9s %9s %9s %9s %9s %6s %6s %5s %7s %6s\n",
		"kind", "run", "items", "secs", "items/s", "recv/s", "bridge", "prosody", "clients", "broker", "reads", "writes", "dups", "refused", "errors")
	fmt.Fprintf(w, "%-16s %3s %8s %7s %9s %9s %9s %9s %9s %9s %6s %6s %5s %7s %6s\n",
		"", "", "", "", "", "", "µs/item", "µs/item", "µs/item", "µs/item", "/item", "/item", "", "", "")
	for _, r := range rs {
		recv := "-"
		if r.RecvRate > 0 {
			recv = fmt.Sprintf("%.0f", r.RecvRate)
		}
		fmt.Fprintf(w, "%-16s %3d %8d %7.2f %9.0f %9s %9.2f %9.2f %9.2f %9.2f %6.3f %6.3f %5d %7.0f %6d\n",
			r.Kind, r.Run, r.Items, r.Secs, r.Rate, recv, r.BridgeCPU, r.ProsodyCPU, r.ClientsCPU, r.BrokerCPU,
			r.ReadsPerItem, r.WritesPerItem, r.Dups, r.Refused, r.Errors)
	}
}

// PrintSummary writes the summary table and the comparison with the
// references and the baseline.
func PrintSummary(w io.Writer, ss []Summary) {
	fmt.Fprintf(w, "\n%-16s %4s %10s %10s %10s %10s %10s %10s %8s %8s\n",
		"kind", "runs", "best/s", "median/s", "%ref rate", "best µs", "median µs", "%ref cpu", "prosody", "clients")
	for _, s := range ss {
		fmt.Fprintf(w, "%-16s %4d %10.0f %10.0f %9.1f%% %10.2f %10.2f %9.1f%% %8.2f %8.2f\n",
			s.Kind, s.Runs, s.BestRate, s.MedianRate, s.PctRate, s.BestCPU, s.MedianCPU, s.PctCPU, s.ProsodyCPU, s.ClientsCPU)
	}
	by := map[string]Summary{}
	for _, s := range ss {
		by[s.Kind] = s
	}
	fmt.Fprintf(w, "\nreferences: out %.0f items/s, in %.0f items/s, %.0f µs CPU/item; target 95%%\n", RefOutPerSec, RefInPerSec, RefCPUPerItem)
	for _, pair := range [][2]string{{"outbound", "baseline-out"}, {"inbound", "baseline-in"}} {
		g, okg := by[pair[0]]
		b, okb := by[pair[1]]
		if okg && okb && b.MedianRate > 0 {
			fmt.Fprintf(w, "%s: gateway %.0f items/s (%.2f µs/item) vs thinnest bridge %.0f items/s (%.2f µs/item) on this machine now: %.1f%% of the rate, %.2fx the CPU\n",
				pair[0], g.MedianRate, g.MedianCPU, b.MedianRate, b.MedianCPU, 100*g.MedianRate/b.MedianRate, g.MedianCPU/b.MedianCPU)
		}
	}
}

// JSONLine is the one-line JSON of the whole measurement.
func JSONLine(meta map[string]any, rs []Result, ss []Summary) string {
	v := map[string]any{"summary": ss, "runs": rs}
	for k, x := range meta {
		v[k] = x
	}
	b, _ := json.Marshal(v)
	return string(b)
}
