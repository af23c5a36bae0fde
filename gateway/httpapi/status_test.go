package httpapi

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/gateway/metrics"
)

// statusServer is a server of a gateway that is not running (both links
// down, no history until fillHistory).
func statusServer(t *testing.T, extra string) (*Server, *httptest.Server) {
	t.Helper()
	api := testServer(t, minimal+extra, "1.2.3-test", nil)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return api, srv
}

// fillHistory records n seconds ending now with 40 sent items a second,
// depth 250, both links up.
func fillHistory(t *testing.T, g *Server, n int) *history {
	t.Helper()
	m := g.opt.Metrics
	start := time.Now().Add(-time.Duration(n) * time.Second)
	h := newHistory(historyLen, start)
	var s snapshot
	s.read(m, g.opt.Config().AMQP.OutQueue)
	h.baseline(start, &s)
	m.Connected.WithLabelValues(metrics.LinkXMPP).Set(1)
	m.Connected.WithLabelValues(metrics.LinkAMQP).Set(1)
	m.SetQueueDepth(g.opt.Config().AMQP.OutQueue, 250)
	for i := 1; i <= n; i++ {
		m.OutboundItems.WithLabelValues(metrics.ResultSent).Add(40)
		m.InboundEvents.WithLabelValues("message", "xmpp-in").Add(2)
		for range 40 {
			m.Lag.Observe(0.02)
		}
		s.read(m, g.opt.Config().AMQP.OutQueue)
		h.record(start.Add(time.Duration(i)*time.Second), &s)
	}
	g.hist.Store(h)
	return h
}

func statusGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestStatusJSON(t *testing.T) {
	g, srv := statusServer(t, "inbound:\n  routes:\n    sales: site-b\n    ops: site-a\n")
	h := fillHistory(t, g, 30)

	resp, body := statusGet(t, srv.URL+"/api/status")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, secret := range []string{"s3cr3t-value", "guest", "amqp://"} {
		if strings.Contains(body, secret) {
			t.Errorf("/api/status shows %q", secret)
		}
	}
	var doc struct {
		Version string         `json:"version"`
		Mode    string         `json:"mode"`
		XMPP    map[string]any `json:"xmpp"`
		Queues  struct {
			Out, In, Dead string
			Routes        []string
		} `json:"queues"`
		Started  *time.Time            `json:"started"`
		Uptime   float64               `json:"uptime_seconds"`
		Now      int64                 `json:"now"`
		Interval float64               `json:"interval_seconds"`
		Length   int                   `json:"history_length"`
		Current  map[string]any        `json:"current"`
		History  map[string][]*float64 `json:"history"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	if doc.Version != "1.2.3-test" || doc.Mode != "component" || doc.XMPP["address"] != "gw.example.org" || doc.XMPP["server"] != "127.0.0.1:5347" {
		t.Errorf("identity: version %q mode %q xmpp %v", doc.Version, doc.Mode, doc.XMPP)
	}
	if doc.Queues.Out != "xmpp-out" || doc.Queues.In != "xmpp-in" || doc.Queues.Dead != "xmpp-out.dead" ||
		strings.Join(doc.Queues.Routes, ",") != "site-a,site-b" {
		t.Errorf("queues %+v", doc.Queues)
	}
	if doc.Started == nil || !doc.Started.Equal(h.started.Truncate(time.Nanosecond)) || doc.Uptime < 29 || doc.Uptime > 60 {
		t.Errorf("started %v uptime %v", doc.Started, doc.Uptime)
	}
	if doc.Interval != 1 || doc.Length != historyLen {
		t.Errorf("interval %v length %v", doc.Interval, doc.Length)
	}
	c := doc.Current
	// Not running: no session or publisher, whatever the gauges say.
	conn := c["connected"].(map[string]any)
	if conn["xmpp"] != false || conn["amqp"] != false {
		t.Errorf("connected %v, want both false (as /readyz)", conn)
	}
	want := map[string]float64{"out_rate": 40, "dead_rate": 0, "in_rate": 2, "refused_rate": 0, "bounce_rate": 0, "depth": 250, "in_flight": 0}
	for k, v := range want {
		if got, ok := c[k].(float64); !ok || math.Abs(got-v) > 1e-9 {
			t.Errorf("current.%s = %v, want %v", k, c[k], v)
		}
	}
	if lag, ok := c["lag_p95"].(float64); !ok || lag <= 0.0156 || lag > 0.0391 {
		t.Errorf("current.lag_p95 = %v, want within the bucket of 0.02", c["lag_p95"])
	}
	if c["barrier_p95"] != nil {
		t.Errorf("current.barrier_p95 = %v, want null (no barrier observed)", c["barrier_p95"])
	}
	if tot := c["totals"].(map[string]any); tot["sent"] != 1200.0 || tot["inbound"] != 60.0 {
		t.Errorf("totals %v", tot)
	}
	keys := []string{"t", "out", "dead", "in", "refused", "bounces", "depth", "in_flight", "lag_p95", "lag_mean", "barrier_p95", "xmpp", "amqp", "blocked"}
	if len(doc.History) != len(keys) {
		t.Errorf("history has %d series, want %d", len(doc.History), len(keys))
	}
	for _, k := range keys {
		if len(doc.History[k]) != 30 {
			t.Errorf("history.%s has %d points, want 30", k, len(doc.History[k]))
		}
	}
	if v := doc.History["out"][29]; v == nil || *v != 40 {
		t.Errorf("history.out[29] = %v", v)
	}
	if v := doc.History["xmpp"][29]; v == nil || *v != 1 {
		t.Errorf("history.xmpp[29] = %v", v)
	}
	if v := doc.History["barrier_p95"][29]; v != nil {
		t.Errorf("history.barrier_p95[29] = %v, want null", *v)
	}

	// ?since returns only what came after.
	since := int64(*doc.History["t"][24])
	_, body = statusGet(t, srv.URL+"/api/status?since="+strconv.FormatInt(since, 10))
	var later struct{ History map[string][]any }
	if err := json.Unmarshal([]byte(body), &later); err != nil {
		t.Fatal(err)
	}
	if n := len(later.History["t"]); n != 5 {
		t.Errorf("since the 25th sample: %d samples, want 5", n)
	}
	if resp, _ := statusGet(t, srv.URL+"/api/status?since=yesterday"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad since: status %d", resp.StatusCode)
	}
}

func TestStatusJSONNotRecording(t *testing.T) {
	_, srv := statusServer(t, "")
	resp, body := statusGet(t, srv.URL+"/api/status")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["started"]; ok {
		t.Errorf("started present before recording: %s", body)
	}
	if doc["current"].(map[string]any)["depth"] != nil {
		t.Errorf("depth should be null before it is polled: %s", body)
	}
}

func TestStatusClientModeHidesAccount(t *testing.T) {
	g := testServer(t, "xmpp:\n  mode: client\n  jid: bot-account@chat.example.org/gw\n  password: pw-secret-value\n  server: chat.example.org:5222\n", "", nil)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/", "/api/status"} {
		_, body := statusGet(t, srv.URL+path)
		if strings.Contains(body, "bot-account") || strings.Contains(body, "pw-secret-value") {
			t.Errorf("%s shows the account or its password", path)
		}
		if !strings.Contains(body, "chat.example.org") {
			t.Errorf("%s does not name the domain", path)
		}
	}
}

func TestStatusPage(t *testing.T) {
	g, srv := statusServer(t, "")
	fillHistory(t, g, 30)
	resp, body := statusGet(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The figures are in the HTML itself, for a page read without script.
	for _, want := range []string{
		`<span id="v-out" data-value="40">40</span>`,
		`<span id="v-in" data-value="2">2.0</span>`,
		`<span id="v-depth" data-value="250">250</span>`,
		`<span id="v-sent">1` + "\u2009" + `200</span>`,
		`id="b-xmpp" class="badge down" data-state="disconnected"`,
		`1.2.3-test`, `gw.example.org`, `xmpp-out`,
		`<script type="application/json" id="initial">{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !regexp.MustCompile(`<span id="v-lag" data-value="0\.0[0-9]+">[0-9]+ ms</span>`).MatchString(body) {
		t.Errorf("page lacks the lag in ms")
	}
	assertSelfContained(t, body)

	// The CSP admits exactly the page's inline style and script.
	csp := resp.Header.Get("Content-Security-Policy")
	style := cutBetween(t, body, "<style>", "</style>")
	script := cutBetween(t, body, "<script>", "</script>")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "'"+sriHash(style)+"'") || !strings.Contains(csp, "'"+sriHash(script)+"'") {
		t.Errorf("CSP %q does not match the inline style and script", csp)
	}

	if resp, _ := statusGet(t, srv.URL+"/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing-here: %d, want 404", resp.StatusCode)
	}
}

func TestStatusPageNotRecording(t *testing.T) {
	_, srv := statusServer(t, "")
	resp, body := statusGet(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<span id="v-out" data-value="0">0</span>`) {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
}

// assertSelfContained fails when page refers to anything outside itself.
func assertSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"http://", "https://", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	ref := regexp.MustCompile(`(?i)\b(src|href|action|srcset|data)\s*=\s*["']?([^"'\s>]*)`)
	for _, m := range ref.FindAllStringSubmatch(page, -1) {
		v := m[2]
		if strings.HasPrefix(v, "//") || strings.Contains(v, "://") {
			t.Errorf("external reference %s", m[0])
		}
		if m[1] == "src" {
			t.Errorf("page loads %s (everything should be inline)", m[0])
		}
	}
}

func cutBetween(t *testing.T, s, open, close string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		t.Fatalf("no %s", open)
	}
	in, _, ok := strings.Cut(rest, close)
	if !ok {
		t.Fatalf("no %s", close)
	}
	return in
}

func TestStatusFormats(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		got, want string
	}{
		0:  {fmtRate(0), "0"},
		1:  {fmtRate(0.44), "0.4"},
		2:  {fmtRate(9.96), "10.0"},
		3:  {fmtRate(12.4), "12"},
		4:  {fmtRate(999.4), "999"},
		5:  {fmtRate(12345), "12.3k"},
		6:  {fmtRate(2.5e6), "2.5M"},
		7:  {fmtRate(nan), "–"},
		8:  {fmtCount(0), "0"},
		9:  {fmtCount(999), "999"},
		10: {fmtCount(1000), "1\u2009000"},
		11: {fmtCount(1234567), "1\u2009234\u2009567"},
		12: {fmtCount(nan), "–"},
		13: {fmtSeconds(0.0004), "0.4 ms"},
		14: {fmtSeconds(0.012), "12 ms"},
		15: {fmtSeconds(1.54), "1.5 s"},
		16: {fmtSeconds(192), "3.2 min"},
		17: {fmtSeconds(nan), "–"},
		18: {fmtUptime(45), "45s"},
		19: {fmtUptime(725), "12m 5s"},
		20: {fmtUptime(3*3600 + 4*60 + 9), "3h 4m"},
		21: {fmtUptime(2*86400 + 5*3600), "2d 5h"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

// TestGrafanaDashboard checks configs/grafana-dashboard.json: it parses, its
// datasource is the ${DS_PROMETHEUS} input, and every metric a panel queries
// is one the gateway exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../configs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID         int    `json:"id"`
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource any    `json:"datasource"`
			Targets    []struct {
				Expr       string `json:"expr"`
				Datasource any    `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want one prometheus datasource DS_PROMETHEUS", dash.Inputs)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Errorf("title %q uid %q", dash.Title, dash.UID)
	}

	// Every name the gateway exports, with the suffixes of histograms.
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	// Vectors without a child yet are not gathered: make one of each.
	m.DeadLetters.WithLabelValues("x")
	m.Bounces.WithLabelValues("x")
	m.InboundEvents.WithLabelValues("x", "y")
	m.InboundRefused.WithLabelValues("x")
	m.QueueDepth.WithLabelValues("x")
	m.PublishFailures.WithLabelValues("x")
	m.Presence.WithLabelValues("x")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		n := f.GetName()
		known[n] = true
		if f.GetType().String() == "HISTOGRAM" {
			known[n+"_bucket"], known[n+"_sum"], known[n+"_count"] = true, true, true
		}
	}
	for _, name := range []string{"xmppgw_outbound_dead_letters_total", "xmppgw_outbound_lag_seconds_bucket", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !known[name] {
			t.Fatalf("%s not gathered: the check below would be vacuous", name)
		}
	}

	metricName := regexp.MustCompile(`\b(xmppgw|process|go)_[a-zA-Z0-9_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		if ds, _ := json.Marshal(p.Datasource); !strings.Contains(string(ds), "${DS_PROMETHEUS}") {
			t.Errorf("panel %d %q: datasource %s, want ${DS_PROMETHEUS}", p.ID, p.Title, ds)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %d %q: %q names no metric", p.ID, p.Title, tg.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !known[n] {
					t.Errorf("panel %d %q: %s is not exported by the gateway", p.ID, p.Title, n)
				}
			}
		}
	}
	// The panels the dashboard is for.
	for _, n := range []string{
		"xmppgw_outbound_items_total", "xmppgw_outbound_dead_letters_total", "xmppgw_outbound_bounces_total",
		"xmppgw_inbound_events_total", "xmppgw_inbound_refused_total", "xmppgw_queue_depth",
		"xmppgw_outbound_lag_seconds_bucket", "xmppgw_barrier_seconds_bucket", "xmppgw_connected",
		"xmppgw_reconnects_total", "xmppgw_amqp_blocked", "xmppgw_publish_failures_total",
		"xmppgw_outbound_in_flight", "process_cpu_seconds_total", "process_resident_memory_bytes",
	} {
		if !used[n] {
			t.Errorf("no panel queries %s", n)
		}
	}
}

// TestStatusRooms: the group chats and their state are on the page and in
// /api/status; without rooms neither shows any.
func TestStatusRooms(t *testing.T) {
	api, srv := statusServer(t, "")
	_, page := statusGet(t, srv.URL+"/")
	_, doc := statusGet(t, srv.URL+"/api/status")
	if strings.Contains(page, "rooms") || strings.Contains(doc, `"rooms"`) {
		t.Fatal("rooms shown without rooms")
	}
	since := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	api.opt.Rooms = func() []Room {
		return []Room{
			{JID: "ops@conference.example.org", Nick: "notices", State: "joined", Since: since},
			{JID: "private@conference.example.org", Nick: "notices", State: "failed", Since: since, Why: "members-only room"},
		}
	}
	_, page = statusGet(t, srv.URL+"/")
	for _, want := range []string{"ops@conference.example.org</span> joined", "private@conference.example.org</span> failed", `title="members-only room"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, doc = statusGet(t, srv.URL+"/api/status")
	if !strings.Contains(doc, `"rooms":[{"jid":"ops@conference.example.org","nick":"notices","state":"joined","since":"2026-11-29T10:00:00Z"}`) {
		t.Errorf("/api/status: %s", doc)
	}
}
