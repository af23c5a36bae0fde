package httpapi

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"xmppgw/gateway/metrics"
)

// The status page draws its charts from the gateway's own recent history:
// once a second RecordHistory reads the Metrics (the collectors themselves,
// not the /metrics text) and keeps one sample per second for the last ten
// minutes in a fixed ring.
//
// Rates are counter deltas divided by the time between two samples. Lag and
// barrier round trip are the 95th percentile of the observations of the
// interval, interpolated inside a histogram bucket as Prometheus'
// histogram_quantile does, and their mean (Δsum/Δcount); an interval without
// observations has none (NaN, null in JSON). Queue depth is the
// xmppgw_queue_depth gauge of amqp.out_queue, which the gateway polls every
// 5 s; NaN until it was polled once.

const (
	historyEvery = time.Second
	historyLen   = 600 // samples: ten minutes at one a second
)

// sample is one second of history.
type sample struct {
	t time.Time

	out, dead, in, refused, bounces float64 // per second over the interval

	depth     float64 // out_queue ready messages; NaN when unknown
	inFlight  float64
	buffered  float64 // inbound events waiting for the broker
	lagP95    float64 // seconds; NaN without observations
	lagMean   float64
	rttP95    float64 // barrier round trip, seconds; NaN without observations
	xmpp      bool
	amqp      bool
	blocked   bool
	snapTotal totals // the counters at t, to average rates over any window
}

// totals are the cumulative counters the rates derive from.
type totals struct {
	sent, dead, in, refused, bounces float64
	reconnXMPP, reconnAMQP           float64
}

// histo is the cumulative state of a histogram.
type histo struct {
	count  uint64
	sum    float64
	bounds []float64 // upper bounds, without +Inf
	cum    []uint64  // cumulative counts per bound
}

// snapshot is everything read from the Metrics at one instant.
type snapshot struct {
	totals
	depth, inFlight, buffered float64
	xmpp, amqp, blocked       bool
	lag, rtt                  histo
}

// read fills s from m; outQueue names the queue whose depth is recorded. It
// reuses s's slices.
func (s *snapshot) read(m *metrics.Metrics, outQueue string) {
	var d dto.Metric
	s.totals = totals{}
	eachMetric(m.OutboundItems, &d, func(d *dto.Metric) {
		switch label(d, "result") {
		case metrics.ResultSent:
			s.sent = d.GetCounter().GetValue()
		case metrics.ResultDeadLettered:
			s.dead = d.GetCounter().GetValue()
		}
	})
	eachMetric(m.InboundEvents, &d, func(d *dto.Metric) { s.in += d.GetCounter().GetValue() })
	eachMetric(m.InboundRefused, &d, func(d *dto.Metric) { s.refused += d.GetCounter().GetValue() })
	eachMetric(m.Bounces, &d, func(d *dto.Metric) { s.bounces += d.GetCounter().GetValue() })
	eachMetric(m.Reconnects, &d, func(d *dto.Metric) {
		switch label(d, "link") {
		case metrics.LinkXMPP:
			s.reconnXMPP = d.GetCounter().GetValue()
		case metrics.LinkAMQP:
			s.reconnAMQP = d.GetCounter().GetValue()
		}
	})
	s.xmpp, s.amqp = false, false
	eachMetric(m.Connected, &d, func(d *dto.Metric) {
		up := d.GetGauge().GetValue() > 0
		switch label(d, "link") {
		case metrics.LinkXMPP:
			s.xmpp = up
		case metrics.LinkAMQP:
			s.amqp = up
		}
	})
	s.depth = math.NaN()
	if m.QueueDepthPolled(outQueue) {
		eachMetric(m.QueueDepth, &d, func(d *dto.Metric) {
			if label(d, "queue") == outQueue {
				s.depth = d.GetGauge().GetValue()
			}
		})
	}
	s.inFlight = gaugeValue(m.OutboundInFlight, &d)
	s.buffered = gaugeValue(m.InboundBuffer, &d)
	s.blocked = gaugeValue(m.Blocked, &d) > 0
	s.lag.read(m.Lag, &d)
	s.rtt.read(m.Barrier, &d)
}

// eachMetric calls fn with every series of c, written into d.
func eachMetric(c prometheus.Collector, d *dto.Metric, fn func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		d.Reset()
		if m.Write(d) == nil {
			fn(d)
		}
	}
}

func gaugeValue(g prometheus.Gauge, d *dto.Metric) float64 {
	d.Reset()
	if g.Write(d) != nil {
		return 0
	}
	return d.GetGauge().GetValue()
}

func label(d *dto.Metric, name string) string {
	for _, l := range d.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (h *histo) read(m prometheus.Histogram, d *dto.Metric) {
	d.Reset()
	if m.Write(d) != nil {
		return
	}
	hd := d.GetHistogram()
	h.count, h.sum = hd.GetSampleCount(), hd.GetSampleSum()
	h.bounds, h.cum = h.bounds[:0], h.cum[:0]
	for _, b := range hd.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		h.bounds = append(h.bounds, b.GetUpperBound())
		h.cum = append(h.cum, b.GetCumulativeCount())
	}
}

// since returns the mean and the q-quantile of the observations made after
// prev, NaN for both when there were none.
func (h *histo) since(prev *histo, q float64) (mean, quantile float64) {
	if h.count <= prev.count {
		return math.NaN(), math.NaN()
	}
	n := float64(h.count - prev.count)
	mean = (h.sum - prev.sum) / n
	rank := q * n
	var lower float64
	var below float64 // observations at or below lower
	for i, ub := range h.bounds {
		c := float64(h.cum[i])
		if i < len(prev.cum) && len(prev.bounds) == len(h.bounds) {
			c -= float64(prev.cum[i])
		}
		if c >= rank && c > below {
			return mean, lower + (ub-lower)*(rank-below)/(c-below)
		}
		lower, below = ub, c
	}
	// Above the highest bound: like histogram_quantile, report that bound.
	return mean, lower
}

// copyFrom makes h a copy of o, reusing h's slices.
func (h *histo) copyFrom(o *histo) {
	h.count, h.sum = o.count, o.sum
	h.bounds = append(h.bounds[:0], o.bounds...)
	h.cum = append(h.cum[:0], o.cum...)
}

// history is the ring of samples. The zero value is not ready: use
// newHistory.
type history struct {
	started time.Time

	// Owned by the recorder goroutine.
	prevT time.Time
	prev  snapshot

	mu   sync.Mutex
	ring []sample // fixed length; ring[head] is the next to write
	head int
	n    int // samples held, at most len(ring)
}

func newHistory(size int, started time.Time) *history {
	return &history{started: started, ring: make([]sample, size)}
}

// baseline sets the counters the first sample's rates are relative to.
func (h *history) baseline(now time.Time, s *snapshot) {
	h.prevT = now
	h.prev.totals = s.totals
	h.prev.lag.copyFrom(&s.lag)
	h.prev.rtt.copyFrom(&s.rtt)
}

// record adds the sample at now computed from s and the previous snapshot.
func (h *history) record(now time.Time, s *snapshot) {
	dt := now.Sub(h.prevT).Seconds()
	rate := func(cur, prev float64) float64 {
		if dt <= 0 || cur < prev {
			return 0
		}
		return (cur - prev) / dt
	}
	p := &h.prev
	smp := sample{
		t:         now,
		out:       rate(s.sent, p.sent),
		dead:      rate(s.dead, p.dead),
		in:        rate(s.in, p.in),
		refused:   rate(s.refused, p.refused),
		bounces:   rate(s.bounces, p.bounces),
		depth:     s.depth,
		inFlight:  s.inFlight,
		buffered:  s.buffered,
		xmpp:      s.xmpp,
		amqp:      s.amqp,
		blocked:   s.blocked,
		snapTotal: s.totals,
	}
	smp.lagMean, smp.lagP95 = s.lag.since(&p.lag, 0.95)
	_, smp.rttP95 = s.rtt.since(&p.rtt, 0.95)

	h.mu.Lock()
	h.ring[h.head] = smp
	h.head = (h.head + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
	h.mu.Unlock()

	h.baseline(now, s)
}

// samples appends to dst the samples taken after the Unix millisecond
// sinceMs (all when it is zero), oldest first.
func (h *history) samples(dst []sample, sinceMs int64) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.n {
		s := &h.ring[(h.head-h.n+i+len(h.ring))%len(h.ring)]
		if s.t.UnixMilli() > sinceMs {
			dst = append(dst, *s)
		}
	}
	return dst
}

// last returns up to the last k samples, oldest first.
func (h *history) last(dst []sample, k int) []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	k = min(k, h.n)
	for i := h.n - k; i < h.n; i++ {
		dst = append(dst, h.ring[(h.head-h.n+i+len(h.ring))%len(h.ring)])
	}
	return dst
}

// RecordHistory samples the gateway's figures for the status page once a
// second until ctx is done.
func (srv *Server) RecordHistory(ctx context.Context) {
	h := newHistory(historyLen, time.Now())
	srv.hist.Store(h)
	defer srv.hist.Store(nil)

	var s snapshot
	outQueue := srv.opt.Config().AMQP.OutQueue // a change needs a restart
	s.read(srv.opt.Metrics, outQueue)
	h.baseline(h.started, &s)
	t := time.NewTicker(historyEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.read(srv.opt.Metrics, outQueue)
			h.record(now, &s)
		}
	}
}
