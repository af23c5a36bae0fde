package integration

import (
	"strconv"
	"strings"
	"testing"
)

// metricValue reads one sample (name with labels exactly as exposed, e.g.
// `xmppgw_connected{link="xmpp"}`) from /metrics; -1 when absent.
func metricValue(t testing.TB, gw *runningGateway, series string) float64 {
	t.Helper()
	code, body := gw.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return -1
}

// metricOrZero is metricValue with an absent series read as 0.
func metricOrZero(t testing.TB, gw *runningGateway, series string) float64 {
	t.Helper()
	return max(0, metricValue(t, gw, series))
}
