package gateway

import (
	"os"
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEverySeriesFromTheFirstScrape: every metric of README's table is in
// the first scrape of a gateway that has done nothing yet (the contract:
// never absent), and the series whose labels the configuration decides
// (events per kind and route, the depth of every queue) are there too. A
// reload that adds a route adds its series.
func TestEverySeriesFromTheFirstScrape(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(xmppgw_[a-z_]+)` \\|").FindAllSubmatch(readme, -1) {
		listed = append(listed, string(m[1]))
	}
	if len(listed) < 20 {
		t.Fatalf("found %d metrics in README's table: the pattern no longer matches it", len(listed))
	}

	reg := prometheus.NewRegistry()
	g := testGateway(t, quietConfig(t)+"inbound:\n  routes:\n    shop: shop-in\n", Deps{Registry: reg})
	series := func() map[string]int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, mf := range mfs {
			n[mf.GetName()] = len(mf.GetMetric())
		}
		return n
	}
	got := series()
	for _, name := range listed {
		if got[name] == 0 {
			t.Errorf("%s is listed in README but absent from the first scrape", name)
		}
	}
	// 5 kinds × {default, shop}; out, in, dead letters and shop-in.
	if n := got["xmppgw_inbound_events_total"]; n != 10 {
		t.Errorf("xmppgw_inbound_events_total: %d series, want 10 (5 kinds × 2 routes)", n)
	}
	if n, want := got["xmppgw_queue_depth"], len(g.cfg.Load().Topology().Queues()); n != want || want < 4 {
		t.Errorf("xmppgw_queue_depth: %d series, want one per queue (%d)", n, want)
	}

	next, err := LoadConfig(writeConfig(t, quietConfig(t)+"inbound:\n  routes:\n    shop: shop-in\n    desk: desk-in\n"))
	if err != nil {
		t.Fatal(err)
	}
	g.Reload(next)
	if n := series()["xmppgw_inbound_events_total"]; n != 15 {
		t.Errorf("after a reload adding a route: %d event series, want 15", n)
	}
}
