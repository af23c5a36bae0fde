package metrics

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSeriesFromTheStart: every labelled series whose label values are
// known exists at 0 on the first scrape, so that rate() and increase() see
// the first burst.
func TestSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	for name, want := range map[string]int{
		"xmppgw_inbound_refused_total":       len(RefusalReasons),
		"xmppgw_publish_failures_total":      2,
		"xmppgw_outbound_dead_letters_total": len(DeadLetterReasons),
		"xmppgw_receipts_total":              len(ReceiptStatusLabels),
		"xmppgw_outbound_items_total":        3,
		"xmppgw_connected":                   2,
		"xmppgw_outbound_bounces_total":      len(ConditionLabels),
		"xmppgw_presence_stanzas_total":      len(PresenceTypeLabels),
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d", name, n, err, want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "xmppgw_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") {
					t.Errorf("%s has a JID-like label value %q", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestLabelFunctionsStayInTheirLists: ConditionLabel and PresenceTypeLabel
// return only values of the lists the series are created from.
func TestLabelFunctionsStayInTheirLists(t *testing.T) {
	for _, c := range append(slices.Clone(ConditionLabels), "", "other", "made-up", "Item-Not-Found") {
		if l := ConditionLabel(c); !slices.Contains(ConditionLabels, l) || (l != c && l != "other") {
			t.Errorf("ConditionLabel(%q) = %q", c, l)
		}
	}
	for _, p := range append(slices.Clone(PresenceTypeLabels), "", "other", "chat", "Probe") {
		l := PresenceTypeLabel(p)
		if !slices.Contains(PresenceTypeLabels, l) || (l != p && l != "other" && !(p == "" && l == "available")) {
			t.Errorf("PresenceTypeLabel(%q) = %q", p, l)
		}
	}
}
