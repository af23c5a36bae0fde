// Package prometheus holds the tests of the Prometheus files shipped in
// configs/: the recording and alerting rules, checked and unit-tested with
// Debian's promtool, and the series that the rules and the Grafana
// dashboard read, checked against the series the gateway declares.
package prometheus

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"xmppgw/gateway/metrics"
)

// ruleFiles are the rule files: every .yml here but the promtool tests and
// the example web configuration.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob("*.yml")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.yml") && !strings.HasPrefix(f, "web-config") {
			out = append(out, f)
		}
	}
	if len(out) < 2 {
		t.Fatalf("want the recording and the alerting rules, got %v", out)
	}
	return out
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (.ci/setup does)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool(t, append([]string{"check", "rules"}, ruleFiles(t)...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	tests, err := filepath.Glob("*_test.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no promtool tests: %v", err)
	}
	promtool(t, append([]string{"test", "rules"}, tests...)...)
}

// descRecorder is a registry that also notes the name of every series its
// collectors describe (vectors without a child are not gathered, but are
// described).
type descRecorder struct {
	*prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *descRecorder) note(c prometheus.Collector) {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
}

func (r *descRecorder) Register(c prometheus.Collector) error {
	r.note(c)
	return r.Registry.Register(c)
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.note(c)
	}
	r.Registry.MustRegister(cs...)
}

// gatewaySeries are the names of the series the gateway exports (with the
// _bucket, _sum and _count of its histograms), from gateway/metrics itself.
func gatewaySeries(t *testing.T) map[string]bool {
	t.Helper()
	r := &descRecorder{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	metrics.New(r)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				r.names[mf.GetName()+s] = true
			}
		}
	}
	if !r.names["xmppgw_connected"] || !r.names["xmppgw_outbound_lag_seconds_bucket"] || !r.names["go_goroutines"] {
		t.Fatalf("the gateway's series were not all found: %v", r.names)
	}
	return r.names
}

// seriesIn are the series names an expression reads: every name of the
// gateway's namespaces (xmppgw_, go_, process_) and every recording rule
// (level:metric:operation).
var seriesName = regexp.MustCompile(`\b(?:(?:xmppgw|go|process)_[a-zA-Z0-9_]+|[a-z_]+:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+)\b`)

func seriesIn(expr string) []string {
	// Label values and templates are not names.
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	return seriesName.FindAllString(expr, -1)
}

// rules is what this test reads of the rule files.
type rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record string `json:"record"`
			Alert  string `json:"alert"`
			Expr   string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// Every series the rules and the dashboard read is one the gateway exports
// or one the rules record: a renamed metric fails here, not silently in
// production.
func TestQueriesReadExistingSeries(t *testing.T) {
	known := gatewaySeries(t)
	var exprs []string
	recorded := map[string]bool{}
	for _, f := range ruleFiles(t) {
		rs := readRules(t, f)
		for _, g := range rs.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					recorded[r.Record] = true
				}
				exprs = append(exprs, r.Expr)
			}
		}
	}
	dash := dashboardQueries(t, "../grafana-dashboard.json")
	if len(dash) < 10 {
		t.Fatalf("only %d dashboard queries found", len(dash))
	}
	for i, e := range append(exprs, dash...) {
		names := seriesIn(e)
		if len(names) == 0 && !strings.Contains(e, "up{") {
			t.Errorf("%d: %q reads no series of the gateway", i, e)
		}
		for _, n := range names {
			if !known[n] && !recorded[n] {
				t.Errorf("%d: %q reads %s, which neither the gateway exports nor a rule records", i, e, n)
			}
		}
	}
}

// readRules reads the expressions of a rule file (whether it is valid is
// TestPromtoolCheckRules's question).
func readRules(t *testing.T, path string) rules {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs rules
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &rs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rs
}

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// the targets of every panel (nested ones too) and the template variables'
// queries.
func dashboardQueries(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(ps []json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p struct {
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
				Panels []json.RawMessage `json:"panels"`
			}
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr != "" && !slices.Contains(out, tg.Expr) {
					out = append(out, tg.Expr)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, v.Definition)
		}
	}
	return out
}

// readmeBlocks returns the fenced blocks of README.md that contain marker.
func readmeBlocks(t *testing.T, marker string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var block strings.Builder
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case !in && fence:
			in = true
			block.Reset()
		case in && strings.TrimSpace(line) == "```":
			in = false
			if strings.Contains(block.String(), marker) {
				out = append(out, block.String())
			}
		case in:
			block.WriteString(line + "\n")
		}
	}
	return out
}

// The README's web configuration is the example file's (comments aside);
// every file its commands name exists; its table of alerts lists exactly
// the alerts of xmppgw.alerts.yml.
func TestREADMEMatchesTheFiles(t *testing.T) {
	blocks := readmeBlocks(t, "basic_auth_users:")
	if len(blocks) != 1 {
		t.Fatalf("README: %d blocks with basic_auth_users", len(blocks))
	}
	example, err := os.ReadFile("web-config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	var inREADME, inFile any
	if err := yaml.Unmarshal([]byte(blocks[0]), &inREADME); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(example, &inFile); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inREADME, inFile) {
		t.Errorf("README's web configuration %v differs from web-config.example.yml %v", inREADME, inFile)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`configs/prometheus/[\w.-]+`).FindAllString(string(readme), -1) {
		if _, err := os.Stat(filepath.Join("../..", m)); err != nil {
			t.Errorf("README names %s: %v", m, err)
		}
	}

	var alerts []string
	for _, g := range readRules(t, "xmppgw.alerts.yml").Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(Xmppgw\\w+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(alerts)
	slices.Sort(documented)
	if !slices.Equal(alerts, documented) {
		t.Errorf("README's table of alerts %v, the rules %v", documented, alerts)
	}
}
