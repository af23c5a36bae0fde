package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// The example web configuration's user and password
// (configs/prometheus/web-config.example.yml).
const (
	webUser     = "prometheus"
	webPassword = "change-me"
)

// TestPrometheus runs Debian's Prometheus against the gateway as an
// operator would: the gateway's listener secured by the example web
// configuration (TLS and basic auth), Prometheus scraping it every second
// with the rule files of configs/prometheus loaded. After known traffic
// both ways, every query of the Grafana dashboard and every recording rule
// returns data, every series the alerts read exists, every rule evaluates
// without error, and the alerts whose conditions the traffic creates are
// active: a dead target (XmppgwDown, XmppgwStandbyMissing), lag of two
// hours (XmppgwOutboundLagHigh), 15 dead letters (XmppgwDeadLetters), 12
// events to a route whose queue is gone (XmppgwInboundRefused,
// XmppgwPublishFailures).
func TestPrometheus(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (.ci/setup does)")
	}
	root := harness.RepoRoot(t)

	// The example web configuration as written, with a certificate for
	// 127.0.0.1 under the names it gives.
	webDir := t.TempDir()
	example, err := os.ReadFile(filepath.Join(root, "configs/prometheus/web-config.example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(webDir, "web-config.yml")
	if err := os.WriteFile(webConfig, example, 0o600); err != nil {
		t.Fatal(err)
	}
	caFile, clientTLS := writeServerCert(t, webDir, "xmppgw.crt", "xmppgw.key")

	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	shop := harness.UniqueQueue(t, "shop")
	cfg := gatewayConfig(t, p, q)
	cfg.HTTP.WebConfig = webConfig // checked by gateway.New, as at load
	cfg.Inbound.Routes = map[string]string{"shop": shop}
	gw := startGateway(t, cfg)
	addr := gw.HTTPAddr()
	// A hot standby: the same configuration; the server refuses it the
	// component while gw holds it.
	standbyCfg := gatewayConfig(t, p, q)
	standbyCfg.HTTP.WebConfig = webConfig
	standbyCfg.Inbound.Routes = cfg.Inbound.Routes
	standbyAddr := startGatewayNoWait(t, standbyCfg).HTTPAddr()

	// The listener itself: TLS and basic auth.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, c := range []struct {
		user, pw string
		code     int
	}{{webUser, webPassword, 200}, {webUser, "wrong", 401}, {"", "", 401}} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pw)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Fatalf("/metrics as %q/%q: %d, want %d", c.user, c.pw, resp.StatusCode, c.code)
		}
	}

	// Prometheus, configured with the README's scrape job and rule files:
	// the gateway and a target where nothing listens (a dead standby) in
	// job xmppgw; the gateway and its live standby in job xmppgw-ha; the
	// gateway with a wrong password and over plain HTTP in jobs that must
	// fail.
	dead := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	pwFile := filepath.Join(webDir, "xmppgw.password")
	if err := os.WriteFile(pwFile, []byte(webPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	readmeJob := readmeBlock(t, filepath.Join(root, "README.md"), "job_name: xmppgw", map[string]string{
		"/etc/prometheus/rules/xmppgw.*.yml":               filepath.Join(root, "configs/prometheus/xmppgw.*.yml"),
		"/etc/prometheus/xmppgw-ca.crt":                    caFile,
		"/etc/prometheus/xmppgw.password":                  pwFile,
		"['gw1.example.org:9465', 'gw2.example.org:9465']": fmt.Sprintf("['%s', '%s']", addr, dead),
	})
	prom := startPrometheus(t, promBin, `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
`+readmeJob+fmt.Sprintf(`  - job_name: xmppgw-ha
    scheme: https
    tls_config:
      ca_file: %s
    basic_auth:
      username: %s
      password_file: %s
    static_configs:
      - targets: ['%s', '%s']
  - job_name: badauth
    scheme: https
    tls_config:
      ca_file: %s
    basic_auth:
      username: %s
      password: wrong
    static_configs:
      - targets: ['%s']
  - job_name: plainhttp
    static_configs:
      - targets: ['%s']
`, caFile, webUser, pwFile, addr, standbyAddr, caFile, webUser, addr, addr))

	prom.eventually(t, 30*time.Second, "the targets' health", func() error {
		return prom.checkTargets(map[string]string{
			"xmppgw/" + addr: "up", "xmppgw/" + dead: "down",
			"xmppgw-ha/" + addr: "up", "xmppgw-ha/" + standbyAddr: "up",
			"badauth/" + addr: "down: 401", "plainhttp/" + addr: "down: 400",
		})
	})

	// Known traffic. Out: 30 items enqueued two hours ago, 15 that are not
	// JSON, one to a user that does not exist (a bounce).
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	var bodies [][]byte
	for i := range 30 {
		bodies = append(bodies, mustJSON(t, outItem{Target: p.JID("alice"), Text: fmt.Sprint("p", i), EnqueuedAt: old}))
	}
	for range 15 {
		bodies = append(bodies, []byte("not json"))
	}
	bodies = append(bodies, mustJSON(t, outItem{Target: "nobody@" + p.Domain, Text: "anyone?"}))
	publishItems(t, q.out, "prom-", bodies)
	for range 30 {
		recv(t, alice, 20*time.Second)
	}
	// In: 20 messages to the default route; then 12 to a route whose queue
	// is gone (each refused, each a failed publish).
	ctx := context.Background()
	for i := range 20 {
		if err := alice.Send(ctx, "notices@"+p.ComponentDomain, fmt.Sprint("in", i)); err != nil {
			t.Fatal(err)
		}
	}
	harness.DeleteQueues(t, shop)
	for i := range 12 {
		if err := alice.Send(ctx, "shop@"+p.ComponentDomain, fmt.Sprint("void", i)); err != nil {
			t.Fatal(err)
		}
	}

	// What Prometheus scraped is the known traffic.
	for sel, want := range map[string]float64{
		`xmppgw_outbound_items_total{job="xmppgw",result="sent"}`:                  31,
		`xmppgw_outbound_items_total{job="xmppgw",result="dead_lettered"}`:         15,
		`xmppgw_outbound_dead_letters_total{job="xmppgw",reason="invalid_json"}`:   15,
		`xmppgw_inbound_events_total{job="xmppgw",kind="message",route="default"}`: 20,
		`xmppgw_inbound_refused_total{job="xmppgw",reason="returned"}`:             12,
		`sum(xmppgw_outbound_bounces_total{job="xmppgw"})`:                         1,
		`xmppgw_outbound_lag_seconds_count{job="xmppgw"}`:                          31,
	} {
		prom.eventually(t, 30*time.Second, sel, func() error { return prom.equals(sel, want) })
	}

	// The rules: loaded from both files, every one healthy.
	var rules []promRule
	prom.eventually(t, 30*time.Second, "every rule evaluated without error", func() error {
		var err error
		rules, err = prom.rules()
		return err
	})

	// Every recording rule returns data, at least one value a number.
	for _, r := range rules {
		if r.Type == "recording" {
			prom.eventually(t, 60*time.Second, "recording rule "+r.Name, func() error { return prom.hasData(r.Name) })
		}
	}

	// Every alert evaluates, and every series it reads exists.
	for _, r := range rules {
		if r.Type != "alerting" {
			continue
		}
		if _, err := prom.query(r.Query); err != nil {
			t.Errorf("alert %s: %v", r.Name, err)
		}
		for _, sel := range selectorsIn(r.Query) {
			prom.eventually(t, 30*time.Second, fmt.Sprintf("%s of alert %s", sel, r.Name), func() error { return prom.hasData(sel) })
		}
	}

	t.Logf("%d rules loaded, each evaluated without error and every recording rule returning data", len(rules))

	// The standby as the rules see it: broker link up, XMPP link down; so
	// job xmppgw-ha has two healthy gateways, one active, and no standby
	// is missing there.
	for sel, want := range map[string]float64{
		fmt.Sprintf(`xmppgw_connected{job="xmppgw-ha",instance=%q,link="amqp"}`, standbyAddr): 1,
		fmt.Sprintf(`xmppgw_connected{job="xmppgw-ha",instance=%q,link="xmpp"}`, standbyAddr): 0,
		`job:xmppgw_gateways_healthy:count{job="xmppgw-ha"}`:                                  2,
		`job:xmppgw_gateways_active:count{job="xmppgw-ha"}`:                                   1,
		`job:xmppgw_gateways_targets:count{job="xmppgw-ha"}`:                                  2,
		`job:xmppgw_gateways_healthy:count{job="xmppgw"}`:                                     1,
	} {
		prom.eventually(t, 30*time.Second, sel, func() error { return prom.equals(sel, want) })
	}
	prom.eventually(t, 30*time.Second, "no standby missing in xmppgw-ha", func() error {
		if prom.alertActive("XmppgwStandbyMissing", map[string]string{"job": "xmppgw-ha"}) == nil {
			return errors.New("XmppgwStandbyMissing is active for xmppgw-ha")
		}
		return nil
	})

	// The alerts the traffic and the dead target call for are active.
	for name, labels := range map[string]map[string]string{
		"XmppgwDown":            {"instance": dead},
		"XmppgwStandbyMissing":  {"job": "xmppgw"},
		"XmppgwOutboundLagHigh": {"job": "xmppgw"},
		"XmppgwDeadLetters":     {"job": "xmppgw"},
		"XmppgwInboundRefused":  {"instance": addr},
		"XmppgwPublishFailures": {"instance": addr, "what": "event"},
	} {
		prom.eventually(t, 60*time.Second, "alert "+name, func() error { return prom.alertActive(name, labels) })
	}
	// And the links are up: no alert says otherwise.
	for _, name := range []string{"XmppgwXMPPLinkDown", "XmppgwBrokerLinkDown", "XmppgwBrokerBlocking"} {
		if err := prom.alertActive(name, nil); err == nil {
			t.Errorf("alert %s is active while the links are up", name)
		}
	}

	// Every query of the Grafana dashboard returns data, with the
	// dashboard's variables as an operator would pick them.
	vars := strings.NewReplacer(`$__rate_interval`, "5m", `$instance`, ".*", `$job`, ".*", `$out_queue`, q.out)
	queries := dashboardQueries(t, filepath.Join(root, "configs/grafana-dashboard.json"))
	if len(queries) < 10 {
		t.Fatalf("only %d dashboard queries", len(queries))
	}
	for _, dq := range queries {
		expr := vars.Replace(dq.expr)
		// Grafana's label_values(selector, label) lists the label's values
		// among the selector's series.
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		}
		prom.eventually(t, 30*time.Second, "dashboard query "+dq.expr, func() error { return prom.hasData(expr) })
	}
	t.Logf("%d dashboard queries return data", len(queries))

	// With a standby (and the active gateway scraped by two jobs), the
	// status figures read the gateways as one: XMPP is up, and the 15 dead
	// letters are 15, not one reading per gateway added up.
	panel := func(title string) string {
		for _, dq := range queries {
			if dq.panel == title {
				return vars.Replace(dq.expr)
			}
		}
		t.Fatalf("no dashboard panel %q", title)
		return ""
	}
	prom.eventually(t, 30*time.Second, "dashboard XMPP with a standby", func() error { return prom.equals(panel("XMPP"), 1) })
	prom.eventually(t, 30*time.Second, "dashboard depth of the dead-letter queue", func() error {
		s, err := prom.query(panel("Queue depth by queue"))
		if err != nil {
			return err
		}
		for _, x := range s {
			if x.labels["queue"] == q.dead {
				if x.value != 15 {
					return fmt.Errorf("depth of %s: %v, want 15", q.dead, x.value)
				}
				return nil
			}
		}
		return fmt.Errorf("no depth of %s: %v", q.dead, s)
	})
}

// TestPrometheusWebConfigCheckConfig: xmppgw check-config accepts the
// example web configuration (with its certificate beside it) and shows the
// key, and refuses a web configuration with a password instead of its hash
// with exit 2 and an error that names the key and both files but not the
// password.
func TestPrometheusWebConfigCheckConfig(t *testing.T) {
	bin := harness.BuildBinary(t)
	root := harness.RepoRoot(t)
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join(root, "configs/prometheus/web-config.example.yml"))
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "web-config.yml")
	if err := os.WriteFile(good, example, 0o600); err != nil {
		t.Fatal(err)
	}
	writeServerCert(t, dir, "xmppgw.crt", "xmppgw.key")
	const plain = "hunter2-plaintext"
	bad := filepath.Join(dir, "bad-web-config.yml")
	if err := os.WriteFile(bad, []byte("basic_auth_users:\n  prometheus: "+plain+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		web  string
		exit int
		want []string
	}{
		{good, 0, []string{"web_config", good}},
		{bad, 2, []string{"http.web_config", bad, "bcrypt"}},
		{filepath.Join(dir, "missing.yml"), 2, []string{"http.web_config", "missing.yml", "no such file"}},
	} {
		cfg := filepath.Join(t.TempDir(), "xmppgw.yaml")
		body := "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\nhttp:\n  web_config: " + c.web + "\n"
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "check-config", "-c", cfg).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.exit {
			t.Errorf("%d: exit %d, want %d:\n%s", i, code, c.exit, out)
		}
		want := c.want
		if c.exit != 0 {
			want = append(want, cfg) // an error names the config file too
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%d: output does not say %q:\n%s", i, w, out)
			}
		}
		if strings.Contains(string(out), plain) || strings.Contains(string(out), "s3cr3t-value") {
			t.Errorf("%d: a secret in the output:\n%s", i, out)
		}
	}
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// readmeBlock returns the fenced block of the README that contains marker,
// with each key of subs (a value of the example, e.g. a path under /etc)
// replaced by this test's; each must be there once, so that the README
// cannot change without this test noticing.
func readmeBlock(t *testing.T, readme, marker string, subs map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var block string
	var cur strings.Builder
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case !in && fence:
			in = true
			cur.Reset()
		case in && strings.TrimSpace(line) == "```":
			in = false
			if block == "" && strings.Contains(cur.String(), marker) {
				block = cur.String()
			}
		case in:
			cur.WriteString(line + "\n")
		}
	}
	if block == "" {
		t.Fatalf("%s: no block with %q", readme, marker)
	}
	for from, to := range subs {
		if strings.Count(block, from) != 1 {
			t.Fatalf("%s: the block with %q no longer has %q once:\n%s", readme, marker, from, block)
		}
		block = strings.ReplaceAll(block, from, to)
	}
	return block
}

// writeServerCert writes a self-signed certificate for 127.0.0.1 and its
// key into dir, and returns the certificate's path (the CA a client needs)
// and a client TLS config that trusts it.
func writeServerCert(t *testing.T, dir, certName, keyName string) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "xmppgw integration"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile := filepath.Join(dir, certName)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, &tls.Config{RootCAs: pool}
}

// promServer is a Prometheus started by a test.
type promServer struct {
	base string
	http *http.Client
	cmd  *exec.Cmd
	out  *strings.Builder
}

// startPrometheus runs Debian's prometheus with config on a free loopback
// port and a data directory of its own until the test ends, and waits
// until it is ready.
func startPrometheus(t *testing.T, bin, config string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// As the README has the operator check it first.
	if out, err := exec.Command("promtool", "check", "config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s\n%s", err, out, config)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	out := &strings.Builder{}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ps := &promServer{base: "http://" + listen, http: &http.Client{Timeout: 10 * time.Second}, cmd: cmd, out: out}
	t.Cleanup(func() {
		ps.http.CloseIdleConnections()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("prometheus did not stop within 30 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	ps.eventually(t, 60*time.Second, "prometheus ready", func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("prometheus exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := ps.http.Get(ps.base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/-/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return ps
}

// eventually retries check until it returns nil, failing the test with its
// last error after timeout.
func (ps *promServer) eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api gets a Prometheus API endpoint and decodes its data into v.
func (ps *promServer) api(path string, params url.Values, v any) error {
	resp, err := ps.http.Get(ps.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %d %.300s", path, resp.StatusCode, b)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s %s: %s", path, params.Encode(), r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// sample is one element of an instant vector (a scalar has no labels).
type sample struct {
	labels map[string]string
	value  float64
}

func (s sample) String() string { return fmt.Sprintf("%v %v", s.labels, s.value) }

// query evaluates expr now.
func (ps *promServer) query(expr string) ([]sample, error) {
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := ps.api("/api/v1/query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	parse := func(v [2]any) (float64, error) {
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	switch d.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(vec))
		for _, e := range vec {
			f, err := parse(e.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, sample{e.Metric, f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []sample{{value: f}}, err
	}
	return nil, fmt.Errorf("%s: result type %s", expr, d.ResultType)
}

// equals says why expr is not one sample of value want.
func (ps *promServer) equals(expr string, want float64) error {
	s, err := ps.query(expr)
	if err != nil {
		return err
	}
	if len(s) != 1 || s[0].value != want {
		return fmt.Errorf("%s = %v, want %v", expr, s, want)
	}
	return nil
}

// hasData says why expr returns no data now: no series, or none whose
// value is a number (a quantile of no observations is NaN).
func (ps *promServer) hasData(expr string) error {
	s, err := ps.query(expr)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(s, func(x sample) bool { return !math.IsNaN(x.value) && !math.IsInf(x.value, 0) }) {
		return fmt.Errorf("%s: no data: %v", expr, s)
	}
	return nil
}

// checkTargets compares the targets' health with want ("job/address" →
// "up", "down", or "down: <text of the scrape error>").
func (ps *promServer) checkTargets(want map[string]string) error {
	var d struct {
		Active []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := ps.api("/api/v1/targets", url.Values{"state": {"active"}}, &d); err != nil {
		return err
	}
	got := map[string]string{}
	for _, tg := range d.Active {
		h := tg.Health
		if h == "down" {
			h += ": " + tg.LastError
		}
		got[tg.Labels["job"]+"/"+tg.Labels["instance"]] = h
	}
	for k, w := range want {
		health, inErr, _ := strings.Cut(w, ": ")
		g := got[k]
		if h, e, _ := strings.Cut(g, ": "); h != health || !strings.Contains(e, inErr) {
			return fmt.Errorf("target %s: %q, want %q (all: %v)", k, g, w, got)
		}
	}
	return nil
}

// promRule is a rule as Prometheus loaded it.
type promRule struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Query     string `json:"query"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

// rules lists the loaded rules; an error if a group of the rule files is
// missing or a rule is not healthy (not yet evaluated, or failing).
func (ps *promServer) rules() ([]promRule, error) {
	var d struct {
		Groups []struct {
			Name  string     `json:"name"`
			File  string     `json:"file"`
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := ps.api("/api/v1/rules", nil, &d); err != nil {
		return nil, err
	}
	var out []promRule
	groups := map[string]bool{}
	for _, g := range d.Groups {
		groups[g.Name] = true
		for _, r := range g.Rules {
			if r.Health != "ok" {
				return nil, fmt.Errorf("rule %s of %s: health %q %s", r.Name, g.File, r.Health, r.LastError)
			}
			out = append(out, r)
		}
	}
	if !groups["xmppgw.recording"] || !groups["xmppgw.alerts"] {
		return nil, fmt.Errorf("groups loaded: %v", groups)
	}
	return out, nil
}

// alertActive says whether an alert called name with labels (a subset) is
// pending or firing.
func (ps *promServer) alertActive(name string, labels map[string]string) error {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := ps.api("/api/v1/alerts", nil, &d); err != nil {
		return err
	}
	var seen []string
	for _, a := range d.Alerts {
		seen = append(seen, a.Labels["alertname"]+"/"+a.State)
		if a.Labels["alertname"] != name {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && a.Labels[k] == v
		}
		if match && (a.State == "pending" || a.State == "firing") {
			return nil
		}
	}
	return errors.New(name + " is not active; active: " + strings.Join(seen, ", "))
}

// selectorsIn are the series selectors an expression reads: every name of
// the gateway's metrics or of a recording rule, with its label matchers,
// and up.
var selectorRe = regexp.MustCompile(`\b((?:xmppgw|go|process)_[a-zA-Z0-9_]+|[a-z_]+:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+|up)(\{[^}]*\})?`)

func selectorsIn(expr string) []string {
	var out []string
	for _, m := range selectorRe.FindAllString(expr, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// dashQuery is one query of the dashboard and the title of its panel ("" for
// a variable's).
type dashQuery struct{ panel, expr string }

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// the targets of every panel (nested ones too) and the definitions of the
// query variables.
func dashboardQueries(t *testing.T, path string) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
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
	var out []dashQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, dashQuery{p.Title, tg.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			out = append(out, dashQuery{"", v.Definition})
		}
	}
	return out
}
