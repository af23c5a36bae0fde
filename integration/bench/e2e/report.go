package e2e

import (
	"encoding/json"
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
	// ProsodyInstr (servercost kinds): Prosody's instructions per item,
	// the median over the runs.
	ProsodyInstr float64 `json:"median_prosody_instructions_per_item,omitempty"`
	PctRate      float64 `json:"pct_of_ref_rate"` // median rate / reference rate × 100
	PctCPU       float64 `json:"pct_of_ref_cpu"`  // reference µs / median µs × 100 (100 = as lean as the reference)
	Dups         int64   `json:"duplicates"`
	Refused      float64 `json:"refused"`
	Errors       int64   `json:"error_stanzas"`
	// MaxRefused is the most refused events in one run (the refused
	// counter or the error stanzas, whichever is higher).
	MaxRefused float64 `json:"max_refused_per_run"`
	PeakRSS    float64 `json:"peak_rss_mib"` // the highest of the runs; -1 unknown
	// Latency: medians of p50 and p99 over the runs, the highest max.
	LatP50 float64 `json:"latency_p50_ms,omitempty"`
	LatP99 float64 `json:"latency_p99_ms,omitempty"`
	LatMax float64 `json:"latency_max_ms,omitempty"`
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
		s := Summary{Kind: k, Runs: len(g), Items: g[0].Items, BestCPU: -1, PeakRSS: -1}
		var rate, recv, cpu, pc, cc, bc, p50, p99, pi []float64
		for _, r := range g {
			rate = append(rate, r.Rate)
			if r.RecvRate > 0 {
				recv = append(recv, r.RecvRate)
			}
			cpu = append(cpu, r.BridgeCPU)
			pc = append(pc, r.ProsodyCPU)
			cc = append(cc, r.ClientsCPU)
			bc = append(bc, r.BrokerCPU)
			if r.ProsodyInstr > 0 {
				pi = append(pi, r.ProsodyInstr)
			}
			s.BestRate = max(s.BestRate, r.Rate)
			if r.BridgeCPU >= 0 && (s.BestCPU < 0 || r.BridgeCPU < s.BestCPU) {
				s.BestCPU = r.BridgeCPU
			}
			s.Dups += r.Dups
			s.Refused += r.Refused
			s.Errors += r.Errors
			s.MaxRefused = max(s.MaxRefused, r.Refused, float64(r.Errors))
			s.PeakRSS = max(s.PeakRSS, r.PeakRSS)
			if r.LatItems > 0 {
				p50, p99 = append(p50, r.LatP50), append(p99, r.LatP99)
				s.LatMax = max(s.LatMax, r.LatMax)
			}
		}
		s.LatP50, s.LatP99 = median(p50), median(p99)
		s.MedianRate, s.MedianRecv, s.MedianCPU = median(rate), median(recv), median(cpu)
		s.ProsodyCPU, s.ClientsCPU, s.BrokerCPU = median(pc), median(cc), median(bc)
		s.ProsodyInstr = median(pi)
		ref := RefOutPerSec
		if strings.Contains(k, "inbound") || strings.HasSuffix(k, "-in") {
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

// JSONLine is the one-line JSON of the whole measurement.
func JSONLine(meta map[string]any, rs []Result, ss []Summary) string {
	v := map[string]any{"summary": ss, "runs": rs}
	for k, x := range meta {
		v[k] = x
	}
	b, _ := json.Marshal(v)
	return string(b)
}
