package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"xmppgw/stanza"
)

// The status page: GET / is one self-contained HTML page (inline CSS and
// JavaScript, no external assets) that polls GET /api/status once a second
// and draws its charts from the history recorded by RecordHistory. The
// figures are rendered on the server too, so the page reads without
// JavaScript.

//go:embed static/status.html static/status.css static/status.js
var staticFS embed.FS

var (
	statusTmpl = template.Must(template.ParseFS(staticFS, "static/status.html"))
	statusCSS  = mustRead("static/status.css")
	statusJS   = mustRead("static/status.js")
	// statusCSP allows exactly the inline style and script of the page and
	// requests to its own origin: nothing external can load.
	statusCSP = "default-src 'none'; style-src '" + sriHash(statusCSS) + "'; script-src '" + sriHash(statusJS) +
		"'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func mustRead(name string) string {
	b, err := staticFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func sriHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// rateWindow is the window the current rates are averaged over.
const rateWindow = 5

func (srv *Server) routesStatus(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", srv.serveStatusPage)
	mux.HandleFunc("GET /api/status", srv.serveStatusJSON)
}

// statusDoc is the JSON of /api/status. It carries no secret and no user's
// JID.
type statusDoc struct {
	Version  string      `json:"version"`
	Mode     stanza.Mode `json:"mode"`
	XMPP     xmppInfo    `json:"xmpp"`
	Queues   queueInfo   `json:"queues"`
	Rooms    []Room      `json:"rooms,omitempty"`
	Started  *time.Time  `json:"started,omitempty"` // nil while not recording
	Uptime   float64     `json:"uptime_seconds"`
	Now      int64       `json:"now"` // Unix milliseconds
	Interval float64     `json:"interval_seconds"`
	Window   int         `json:"history_length"`
	Current  current     `json:"current"`
	History  seriesTable `json:"history"`
}

type xmppInfo struct {
	Server  string `json:"server"`  // host:port in use (xmpp.server while down)
	Address string `json:"address"` // the component's domain, or the account's domain
}

type queueInfo struct {
	Out    string   `json:"out"`
	In     string   `json:"in"`
	Dead   string   `json:"dead"`
	Routes []string `json:"routes,omitempty"`
}

// current are the figures shown big: rates averaged over the last
// rateWindow seconds, the latest lag and barrier figures of that window, the
// latest gauges, and the links as /readyz sees them.
type current struct {
	OutRate     num       `json:"out_rate"`
	DeadRate    num       `json:"dead_rate"`
	InRate      num       `json:"in_rate"`
	RefusedRate num       `json:"refused_rate"`
	BounceRate  num       `json:"bounce_rate"`
	Depth       num       `json:"depth"` // null until polled
	InFlight    num       `json:"in_flight"`
	Buffered    num       `json:"inbound_buffered"`
	LagP95      num       `json:"lag_p95"` // null without items in the window
	LagMean     num       `json:"lag_mean"`
	BarrierP95  num       `json:"barrier_p95"`
	Connected   linkState `json:"connected"`
	Blocked     bool      `json:"blocked"`
	Totals      totalsDoc `json:"totals"`
}

type linkState struct {
	XMPP bool `json:"xmpp"`
	AMQP bool `json:"amqp"`
}

type totalsDoc struct {
	Sent           uint64 `json:"sent"`
	DeadLettered   uint64 `json:"dead_lettered"`
	Inbound        uint64 `json:"inbound"`
	Refused        uint64 `json:"refused"`
	Bounces        uint64 `json:"bounces"`
	ReconnectsXMPP uint64 `json:"reconnects_xmpp"`
	ReconnectsAMQP uint64 `json:"reconnects_amqp"`
}

// seriesTable is the history, one array per figure, oldest first.
type seriesTable struct {
	T        []int64 `json:"t"` // Unix milliseconds
	Out      []num   `json:"out"`
	Dead     []num   `json:"dead"`
	In       []num   `json:"in"`
	Refused  []num   `json:"refused"`
	Bounces  []num   `json:"bounces"`
	Depth    []num   `json:"depth"`
	InFlight []num   `json:"in_flight"`
	LagP95   []num   `json:"lag_p95"`
	LagMean  []num   `json:"lag_mean"`
	RTTP95   []num   `json:"barrier_p95"`
	XMPP     []int   `json:"xmpp"` // 1 connected, 0 not
	AMQP     []int   `json:"amqp"`
	Blocked  []int   `json:"blocked"`
}

// num is a figure in JSON: six significant digits, null for NaN.
type num float64

func (n num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// status builds the document; since limits the history to later samples.
func (srv *Server) status(now time.Time, sinceMs int64) *statusDoc {
	cfg := srv.opt.Config()
	d := &statusDoc{
		Version:  srv.opt.Version,
		Mode:     cfg.XMPP.Mode,
		XMPP:     xmppInfo{Server: cfg.XMPP.Server, Address: cfg.XMPP.Domain},
		Queues:   queueInfo{Out: cfg.AMQP.OutQueue, In: cfg.AMQP.InQueue, Dead: cfg.AMQP.DeadLetterQueue},
		Now:      now.UnixMilli(),
		Interval: historyEvery.Seconds(),
		Window:   historyLen,
	}
	if cfg.XMPP.Mode == stanza.ModeClient {
		d.XMPP.Address = ""
		if j, err := jid.Parse(cfg.XMPP.JID); err == nil {
			d.XMPP.Address = j.Domainpart() // the account itself stays off the page
		}
	}
	if srv.opt.XMPPServer != nil {
		if s := srv.opt.XMPPServer(); s != "" {
			d.XMPP.Server = s // the one of the list in use
		}
	}
	d.Queues.Routes = cfg.RouteQueues()
	if srv.opt.Rooms != nil {
		d.Rooms = srv.opt.Rooms()
	}
	d.Current.Connected.XMPP, d.Current.Connected.AMQP = srv.opt.Links()
	d.Current.Depth = num(math.NaN())
	d.Current.LagP95, d.Current.LagMean, d.Current.BarrierP95 = num(math.NaN()), num(math.NaN()), num(math.NaN())

	h := srv.hist.Load()
	if h == nil {
		return d
	}
	started := h.started.UTC()
	d.Started = &started
	d.Uptime = math.Round(now.Sub(h.started).Seconds())

	var buf [rateWindow + 1]sample
	d.Current.fill(h.last(buf[:0], rateWindow+1))

	hist := h.samples(make([]sample, 0, historyLen), sinceMs)
	d.History.fill(hist)
	return d
}

// fill sets the current figures from the last samples (oldest first).
func (c *current) fill(w []sample) {
	if len(w) == 0 {
		return
	}
	last := &w[len(w)-1]
	c.Depth, c.InFlight, c.Buffered = num(last.depth), num(last.inFlight), num(last.buffered)
	c.Blocked = last.blocked
	t := &last.snapTotal
	c.Totals = totalsDoc{
		Sent: uint64(t.sent), DeadLettered: uint64(t.dead), Inbound: uint64(t.in),
		Refused: uint64(t.refused), Bounces: uint64(t.bounces),
		ReconnectsXMPP: uint64(t.reconnXMPP), ReconnectsAMQP: uint64(t.reconnAMQP),
	}
	if len(w) == 1 {
		c.OutRate, c.DeadRate, c.InRate = num(last.out), num(last.dead), num(last.in)
		c.RefusedRate, c.BounceRate = num(last.refused), num(last.bounces)
	} else {
		first := &w[0]
		dt := last.t.Sub(first.t).Seconds()
		f := &first.snapTotal
		rate := func(a, b float64) num { return num(max(0, a-b) / dt) }
		c.OutRate, c.DeadRate, c.InRate = rate(t.sent, f.sent), rate(t.dead, f.dead), rate(t.in, f.in)
		c.RefusedRate, c.BounceRate = rate(t.refused, f.refused), rate(t.bounces, f.bounces)
	}
	// The latest interval with items acknowledged, within the window (the
	// first sample of w only served as the base of the rates).
	for i := len(w) - 1; i >= 0 && i >= len(w)-rateWindow; i-- {
		if !math.IsNaN(w[i].lagP95) {
			c.LagP95, c.LagMean = num(w[i].lagP95), num(w[i].lagMean)
			break
		}
	}
	for i := len(w) - 1; i >= 0 && i >= len(w)-rateWindow; i-- {
		if !math.IsNaN(w[i].rttP95) {
			c.BarrierP95 = num(w[i].rttP95)
			break
		}
	}
}

func (s *seriesTable) fill(h []sample) {
	n := len(h)
	s.T = make([]int64, n)
	nums := make([]num, 10*n)
	part := func(i int) []num { return nums[i*n : (i+1)*n : (i+1)*n] }
	s.Out, s.Dead, s.In, s.Refused, s.Bounces = part(0), part(1), part(2), part(3), part(4)
	s.Depth, s.InFlight, s.LagP95, s.LagMean, s.RTTP95 = part(5), part(6), part(7), part(8), part(9)
	ints := make([]int, 3*n)
	s.XMPP, s.AMQP, s.Blocked = ints[:n:n], ints[n:2*n:2*n], ints[2*n:]
	for i := range h {
		x := &h[i]
		s.T[i] = x.t.UnixMilli()
		s.Out[i], s.Dead[i], s.In[i], s.Refused[i], s.Bounces[i] = num(x.out), num(x.dead), num(x.in), num(x.refused), num(x.bounces)
		s.Depth[i], s.InFlight[i] = num(x.depth), num(x.inFlight)
		s.LagP95[i], s.LagMean[i], s.RTTP95[i] = num(x.lagP95), num(x.lagMean), num(x.rttP95)
		s.XMPP[i], s.AMQP[i], s.Blocked[i] = b01(x.xmpp), b01(x.amqp), b01(x.blocked)
	}
}

// serveStatusJSON serves /api/status; ?since=<Unix ms> returns only the
// history after that instant (the page polls with the last one it has).
func (srv *Server) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil {
			http.Error(w, "since: want Unix milliseconds", http.StatusBadRequest)
			return
		}
	}
	b, err := json.Marshal(srv.status(time.Now(), since))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// pageData is what the template renders: the figures as text, for a page
// that reads without JavaScript, and the whole document for the script.
type pageData struct {
	Doc     *statusDoc
	Figures map[string]string
	Initial template.JS // the status document as JSON (< > & escaped)
	CSS     template.CSS
	JS      template.JS
}

func (srv *Server) serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	d := srv.status(time.Now(), 0)
	initial, err := json.Marshal(d)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c := &d.Current
	figures := map[string]string{
		"out":      fmtRate(float64(c.OutRate)),
		"dead":     fmtRate(float64(c.DeadRate)),
		"in":       fmtRate(float64(c.InRate)),
		"refused":  fmtRate(float64(c.RefusedRate)),
		"bounces":  fmtRate(float64(c.BounceRate)),
		"depth":    fmtCount(float64(c.Depth)),
		"inflight": fmtCount(float64(c.InFlight)),
		"lag":      fmtSeconds(float64(c.LagP95)),
		"lagmean":  fmtSeconds(float64(c.LagMean)),
		"rtt":      fmtSeconds(float64(c.BarrierP95)),
		"uptime":   fmtUptime(d.Uptime),
		"sent":     fmtCount(float64(c.Totals.Sent)),
		"updated":  time.UnixMilli(d.Now).UTC().Format("15:04:05") + " UTC",
	}
	var b bytes.Buffer
	err = statusTmpl.Execute(&b, pageData{
		Doc: d, Figures: figures, Initial: template.JS(initial),
		CSS: template.CSS(statusCSS), JS: template.JS(statusJS),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b.Bytes())
}

// The formats below are those of status.js (fmtRate, fmtCount, fmtSeconds,
// fmtUptime): keep them in step.

// fmtRate formats a rate per second: 0, 0.4, 12, 950, 12.3k.
func fmtRate(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v < 1000:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v < 1e6:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
}

// fmtCount formats a count with thin spaces between thousands: 12 345.
func fmtCount(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u2009")
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fmtSeconds formats a duration given in seconds: 0.4 ms, 12 ms, 1.5 s, 3.2 min.
func fmtSeconds(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v < 0.01:
		return strconv.FormatFloat(v*1e3, 'f', 1, 64) + " ms"
	case v < 1:
		return strconv.FormatFloat(math.Round(v*1e3), 'f', 0, 64) + " ms"
	case v < 60:
		return strconv.FormatFloat(v, 'f', 1, 64) + " s"
	}
	return strconv.FormatFloat(v/60, 'f', 1, 64) + " min"
}

// fmtUptime formats seconds as 45s, 12m 5s, 3h 4m, 2d 5h.
func fmtUptime(s float64) string {
	n := int64(s)
	switch {
	case n < 60:
		return strconv.FormatInt(n, 10) + "s"
	case n < 3600:
		return strconv.FormatInt(n/60, 10) + "m " + strconv.FormatInt(n%60, 10) + "s"
	case n < 86400:
		return strconv.FormatInt(n/3600, 10) + "h " + strconv.FormatInt(n%3600/60, 10) + "m"
	}
	return strconv.FormatInt(n/86400, 10) + "d " + strconv.FormatInt(n%86400/3600, 10) + "h"
}
