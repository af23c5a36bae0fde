package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"xmppgw/integration/harness"
)

// chromiumPath is Debian's chromium package, installed by .ci/setup.
const chromiumPath = "/usr/bin/chromium"

// chromium runs headless Chromium on url with the extra flags and returns
// its standard output. Virtual time lets the page's script run for budget
// (network waits pause it) before Chromium dumps or shoots the page.
func chromium(t *testing.T, url string, budget time.Duration, flags ...string) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatal("chromium not installed: run .ci/setup")
	}
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=" + strconv.Itoa(int(budget.Milliseconds())),
	}, flags...)
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(flags, " "), err, stderr.String())
	}
	return stdout.String()
}

// dumpDOM returns the page's DOM after its script ran for budget.
func dumpDOM(t *testing.T, url string, budget time.Duration) string {
	t.Helper()
	dom := chromium(t, url, budget, "--dump-dom")
	if !strings.Contains(dom, `id="v-out"`) {
		t.Fatalf("the dumped DOM is not the status page:\n%s", dom)
	}
	return dom
}

// attr returns the value of attribute name of the element with id in dom.
func attr(t *testing.T, dom, id, name string) string {
	t.Helper()
	tag := regexp.MustCompile(`<[a-z]+ [^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(dom)
	if tag == "" {
		t.Fatalf("no element #%s in the DOM", id)
	}
	m := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("#%s has no %s: %s", id, name, tag)
	}
	return m[1]
}

// chartPath is the d of the first line of the chart with id.
func chartPath(t *testing.T, dom, id string) string {
	t.Helper()
	_, fig, ok := strings.Cut(dom, `id="`+id+`"`)
	if !ok {
		t.Fatalf("no chart #%s", id)
	}
	m := regexp.MustCompile(`<path class="line s\d" d="([^"]*)"`).FindStringSubmatch(fig)
	if m == nil {
		t.Fatalf("chart #%s has no line", id)
	}
	return m[1]
}

func numAttr(t *testing.T, dom, id, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(attr(t, dom, id, name), 64)
	if err != nil {
		t.Fatalf("#%s %s: %v", id, name, err)
	}
	return v
}

func TestStatusPageInChromium(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"alice": "alice-pass"}})
	alice := harness.DialClient(t, p, "alice", "alice-pass")
	q := newQueues(t)
	gw := startGateway(t, gatewayConfig(t, p, q))
	url := "http://" + gw.HTTPAddr() + "/"
	waitFor(t, 10*time.Second, "connected gauges", func() bool {
		return metricValue(t, gw, `xmppgw_connected{link="xmpp"}`) == 1 && metricValue(t, gw, `xmppgw_connected{link="amqp"}`) == 1
	})
	waitFor(t, 10*time.Second, "two seconds of history", func() bool { return historyLen(t, gw) >= 2 })

	// (1) The page loads, its script polls and shows the figures.
	dom := dumpDOM(t, url, 3*time.Second)
	for _, id := range []string{"b-xmpp", "b-amqp"} {
		if s := attr(t, dom, id, "data-state"); s != "connected" {
			t.Errorf("#%s says %q, want connected", id, s)
		}
	}
	if !strings.Contains(dom, `XMPP <b>connected</b>`) || !strings.Contains(dom, `RabbitMQ <b>connected</b>`) {
		t.Errorf("the badges do not read connected")
	}
	if m := regexp.MustCompile(`<body[^>]*\bdata-updates="(\d+)"`).FindStringSubmatch(dom); m == nil {
		t.Errorf("the page never updated from /api/status")
	}
	for _, id := range []string{"v-out", "v-in", "v-lag"} {
		if v := attr(t, dom, id, "data-value"); v == "" {
			t.Errorf("#%s has no value", id)
		}
	}
	if v := numAttr(t, dom, "v-out", "data-value"); v != 0 {
		t.Errorf("out rate %v before any traffic", v)
	}
	if n := numAttr(t, dom, "c-out", "data-points"); n < 1 {
		t.Errorf("the outbound chart has %v points", n)
	}

	// (2) Under traffic the charts move and the rate out is shown.
	received := make(chan int, 1)
	const n = 3000
	go func() {
		got := 0
		for got < 2*n {
			select {
			case <-alice.Messages():
				got++
			case <-time.After(30 * time.Second):
				received <- got
				return
			}
		}
		received <- got
	}()
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = mustJSON(t, outItem{Target: p.JID("alice"), Text: fmt.Sprintf("status page item %d", i)})
	}
	publishItems(t, q.out, "status-a-", bodies)
	waitFor(t, 30*time.Second, "first items sent", func() bool {
		return metricValue(t, gw, `xmppgw_outbound_items_total{result="sent"}`) == n
	})
	before := dumpDOM(t, url, 2*time.Second)
	publishItems(t, q.out, "status-b-", bodies)
	waitFor(t, 30*time.Second, "second items sent", func() bool {
		return metricValue(t, gw, `xmppgw_outbound_items_total{result="sent"}`) == 2*n
	})
	sentAt := time.Now().UnixMilli()
	waitFor(t, 30*time.Second, "a history sample after the traffic", func() bool {
		h := history(t, gw)
		return len(h) > 0 && h[len(h)-1] > sentAt
	})
	after := dumpDOM(t, url, 2*time.Second)
	if got := <-received; got != 2*n {
		t.Errorf("alice received %d messages, want %d", got, 2*n)
	}

	if out := numAttr(t, after, "v-out", "data-value"); out <= 0 {
		t.Errorf("out rate shown %v under traffic, want > 0", out)
	}
	if txt := regexp.MustCompile(`id="v-out"[^>]*>([^<]*)<`).FindStringSubmatch(after); txt == nil || txt[1] == "0" || txt[1] == "–" {
		t.Errorf("out rate text %q under traffic", txt)
	}
	if a, b := chartPath(t, before, "c-out"), chartPath(t, after, "c-out"); a == b {
		t.Errorf("the outbound chart did not move: %s", a)
	}
	if pb, pa := numAttr(t, before, "c-out", "data-points"), numAttr(t, after, "c-out", "data-points"); pa <= pb {
		t.Errorf("the outbound chart has %v points, had %v", pa, pb)
	}
	if m := numAttr(t, after, "c-out", "data-max"); m < 10 {
		t.Errorf("the outbound chart's scale is %v after %d items/s", m, n)
	}
	if want := fmt.Sprintf("<span id=\"v-sent\">%d\u2009%03d</span>", 2*n/1000, 2*n%1000); !strings.Contains(after, want) {
		t.Errorf("total sent not shown as %s", want)
	}

	// (3) A screenshot: a real PNG of the page with something drawn on it.
	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, url, 3*time.Second, "--screenshot="+shot, "--window-size=1280,900")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	checkScreenshot(t, b, 1280, 900)
	if dir := os.Getenv("XMPPGW_TEST_SCREENSHOT_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "status.png"), b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// historyLen is the number of samples /api/status holds.
func historyLen(t *testing.T, gw *runningGateway) int {
	t.Helper()
	return len(history(t, gw))
}

// history is the times of the samples /api/status holds (Unix
// milliseconds, oldest first).
func history(t *testing.T, gw *runningGateway) []int64 {
	t.Helper()
	code, body := gw.get(t, "/api/status")
	var doc struct {
		History struct {
			T []int64 `json:"t"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil {
		t.Fatalf("/api/status: %d %v", code, err)
	}
	return doc.History.T
}

// checkScreenshot fails unless b is a w×h PNG with many colours (text,
// badges and charts rather than a blank or error page).
func checkScreenshot(t *testing.T, b []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Errorf("screenshot is %v, want %dx%d", got, w, h)
	}
	colours := map[[3]uint32]bool{}
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	if len(colours) < 50 {
		t.Errorf("screenshot has %d colours: blank?", len(colours))
	}
	if len(b) < 20<<10 {
		t.Errorf("screenshot is %d bytes: blank?", len(b))
	}
}
