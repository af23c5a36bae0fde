package e2e

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func sampleResults() []Result {
	r := func(kind string, rate, cpu, pros, rss float64) Result {
		return Result{Kind: kind, Run: 1, Items: 100000, Rate: rate, BridgeCPU: cpu, ProsodyCPU: pros, BrokerCPU: 30, PeakRSS: rss}
	}
	rs := []Result{
		r("outbound", 11000, 15, 80, 30), r("baseline-out", 11200, 14, 78, 17), r("raw-out", 20000, 0.1, 60, 40),
		r("inbound", 14000, 18, 70, 35), r("baseline-in", 15000, 11, 68, 16), r("raw-in", 21000, 2, 60, 14),
		r("latency-out", 1000, 40, 200, 25), r("baseline-latency-out", 1000, 35, 190, 16),
		r("latency-in", 1000, 50, 150, 28), r("baseline-latency-in", 1000, 30, 140, 15),
		r("backlog", 10000, 16, 85, 70), r("baseline-backlog", 10500, 15, 80, 18),
	}
	rs[3].Refused = 2
	for i := 6; i < 10; i++ {
		rs[i].LatItems, rs[i].LatP50, rs[i].LatP99, rs[i].LatMax = 20000, 1.5, 12.25, 48.5
	}
	rs[8].LatP99 = 25
	return rs
}

// TestTable: every kind has its line, no line is wider than 120 columns,
// the targets say PASS and FAIL where the figures do.
func TestTable(t *testing.T) {
	ss := Summarize(sampleResults())
	var b bytes.Buffer
	PrintTable(&b, ss)
	ts := Targets(ss)
	PrintTargets(&b, ts)
	out := b.String()
	t.Log("\n" + out)
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 120 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	for _, k := range []string{"outbound", "inbound", "latency-out", "latency-in", "backlog", "1.5 / 12.2 / 48.5"} {
		if !strings.Contains(out, k) {
			t.Errorf("no %q in the table", k)
		}
	}
	want := map[string]bool{
		"outbound rate ≥ 0.97 × the bridge's":               true,  // 0.982
		"inbound rate ≥ 0.97 × the bridge's":                false, // 0.933
		"outbound gateway CPU/item ≤ the bridge's":          false,
		"inbound Prosody CPU/item ≤ 1.05 × with the bridge": true,
		"gateway peak RSS ≤ 64 MiB (every run)":             false, // backlog 70
		"latency-out p99 ≤ 20 ms at the latency rate":       true,
		"latency-in p99 ≤ 20 ms at the latency rate":        false,
		"0 refused in the inbound flood":                    false,
	}
	for _, tg := range ts {
		if w, ok := want[tg.Goal]; ok {
			if !tg.Known || tg.Pass != w {
				t.Errorf("%s: pass %v (known %v), want %v: %s", tg.Goal, tg.Pass, tg.Known, w, tg.Measured)
			}
			delete(want, tg.Goal)
		}
	}
	for g := range want {
		t.Errorf("no target %q", g)
	}
}

// TestTargetsUnknown: a kind not measured is n/a, never PASS.
func TestTargetsUnknown(t *testing.T) {
	for _, tg := range Targets(Summarize(sampleResults()[:3])) {
		if strings.HasPrefix(tg.Goal, "inbound") && (tg.Known || tg.Pass) {
			t.Errorf("%s: known %v pass %v without inbound runs", tg.Goal, tg.Known, tg.Pass)
		}
	}
}

// TestCostTable: the servercost kinds make the third part, alone or after
// the others, and their targets.
func TestCostTable(t *testing.T) {
	c := func(kind string, instr float64) Result {
		return Result{Kind: kind, Run: 1, Items: 3000, Rate: 140, BridgeCPU: 50, ProsodyCPU: 7000, ProsodyInstr: instr, PeakRSS: 20}
	}
	cost := []Result{
		c("servercost-raw-out", 440e3), c("servercost-baseline-out", 461.3e3), c("servercost-baseline-origin-out", 507.7e3),
		c("servercost-out", 509.7e3), c("servercost-raw-in", 276e3), c("servercost-baseline-in", 281.7e3), c("servercost-in", 281e3),
	}
	for _, rs := range [][]Result{cost, append(sampleResults(), cost...)} {
		ss := Summarize(rs)
		var b bytes.Buffer
		PrintTable(&b, ss)
		ts := Targets(ss)
		PrintTargets(&b, ts)
		out := b.String()
		t.Log("\n" + out)
		for _, l := range strings.Split(out, "\n") {
			if n := utf8.RuneCountInString(l); n > 120 {
				t.Errorf("line of %d columns: %q", n, l)
			}
		}
		for _, k := range []string{"servercost-out", "servercost-in", "509.7", "461.3", "507.7", "1.105", "1.004"} {
			if !strings.Contains(out, k) {
				t.Errorf("no %q in the table", k)
			}
		}
		if len(rs) == len(cost) && strings.Contains(out, "items/s -") {
			t.Error("the first part is printed without its kinds")
		}
		want := map[string]bool{
			"outbound Prosody instructions/item ≤ 1.05 × with the bridge": false, // 1.105
			"inbound Prosody instructions/item ≤ 1.05 × with the bridge":  true,  // 0.998
		}
		for _, tg := range ts {
			if w, ok := want[tg.Goal]; ok {
				if !tg.Known || tg.Pass != w {
					t.Errorf("%s: pass %v (known %v), want %v: %s", tg.Goal, tg.Pass, tg.Known, w, tg.Measured)
				}
				delete(want, tg.Goal)
			}
		}
		for g := range want {
			t.Errorf("no target %q", g)
		}
	}
}
