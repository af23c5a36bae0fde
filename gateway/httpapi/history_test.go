package httpapi

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/gateway/metrics"
)

// recorder drives a history by hand: no goroutine, no ticker.
type recorder struct {
	m   *metrics.Metrics
	h   *history
	s   snapshot
	now time.Time
}

func newRecorder(t *testing.T, size int) *recorder {
	t.Helper()
	r := &recorder{m: metrics.New(prometheus.NewRegistry()), now: time.Unix(1_800_000_000, 0)}
	r.h = newHistory(size, r.now)
	r.s.read(r.m, "out")
	r.h.baseline(r.now, &r.s)
	return r
}

// step advances the clock by d and records a sample.
func (r *recorder) step(d time.Duration) sample {
	r.now = r.now.Add(d)
	r.s.read(r.m, "out")
	r.h.record(r.now, &r.s)
	got := r.h.last(nil, 1)
	return got[0]
}

func TestHistoryRates(t *testing.T) {
	r := newRecorder(t, 10)
	m := r.m
	steps := []struct {
		d                               time.Duration
		sent, dead, in, refused, bounce float64
		want                            [5]float64 // out, dead, in, refused, bounces per second
	}{
		0: {time.Second, 100, 0, 0, 0, 0, [5]float64{100, 0, 0, 0, 0}},
		1: {time.Second, 0, 0, 0, 0, 0, [5]float64{0, 0, 0, 0, 0}},
		2: {2 * time.Second, 500, 4, 30, 2, 6, [5]float64{250, 2, 15, 1, 3}},
		3: {500 * time.Millisecond, 10, 1, 1, 0, 0, [5]float64{20, 2, 2, 0, 0}},
	}
	for i, st := range steps {
		m.OutboundItems.WithLabelValues(metrics.ResultSent).Add(st.sent)
		m.OutboundItems.WithLabelValues(metrics.ResultDeadLettered).Add(st.dead)
		// Several series of a vector add up.
		m.InboundEvents.WithLabelValues("message", "in").Add(st.in / 2)
		m.InboundEvents.WithLabelValues("error", "site-a").Add(st.in / 2)
		m.InboundRefused.WithLabelValues("buffer_full").Add(st.refused)
		m.Bounces.WithLabelValues("item-not-found").Add(st.bounce / 3)
		m.Bounces.WithLabelValues("remote-server-not-found").Add(2 * st.bounce / 3)
		s := r.step(st.d)
		got := [5]float64{s.out, s.dead, s.in, s.refused, s.bounces}
		for k := range got {
			if math.Abs(got[k]-st.want[k]) > 1e-9 {
				t.Errorf("step %d: rates %v, want %v", i, got, st.want)
				break
			}
		}
	}
}

func TestHistoryGauges(t *testing.T) {
	r := newRecorder(t, 10)
	m := r.m
	// The series exists at 0 from the start; not polled yet, it is unknown.
	m.SeedConfigured(nil, []string{"out"})
	s := r.step(time.Second)
	if !math.IsNaN(s.depth) || s.xmpp || s.amqp || s.blocked {
		t.Fatalf("fresh: depth %v xmpp %v amqp %v blocked %v, want NaN and all down", s.depth, s.xmpp, s.amqp, s.blocked)
	}
	m.SetQueueDepth("other", 7)
	m.SetQueueDepth("out", 1234)
	m.OutboundInFlight.Set(55)
	m.InboundBuffer.Set(3)
	m.Connected.WithLabelValues(metrics.LinkXMPP).Set(1)
	m.Connected.WithLabelValues(metrics.LinkAMQP).Set(1)
	m.Blocked.Set(1)
	s = r.step(time.Second)
	if s.depth != 1234 || s.inFlight != 55 || s.buffered != 3 || !s.xmpp || !s.amqp || !s.blocked {
		t.Fatalf("got depth %v in flight %v buffered %v xmpp %v amqp %v blocked %v", s.depth, s.inFlight, s.buffered, s.xmpp, s.amqp, s.blocked)
	}
	m.Connected.WithLabelValues(metrics.LinkAMQP).Set(0)
	if s = r.step(time.Second); !s.xmpp || s.amqp {
		t.Fatalf("amqp down: xmpp %v amqp %v", s.xmpp, s.amqp)
	}
}

func TestHistoryLag(t *testing.T) {
	r := newRecorder(t, 10)
	m := r.m
	// Only observations of the interval count: these old ones must not.
	for range 1000 {
		m.Lag.Observe(100)
	}
	r.step(time.Second)

	if s := r.step(time.Second); !math.IsNaN(s.lagP95) || !math.IsNaN(s.lagMean) || !math.IsNaN(s.rttP95) {
		t.Fatalf("no observations: lag p95 %v mean %v rtt %v, want NaN", s.lagP95, s.lagMean, s.rttP95)
	}
	// 100 observations: 90 of 0.05 s and 10 of 2 s. The buckets around them
	// are (0.0391, 0.0977] and (1.526, 3.815]; p95 is the 95th, half-way into
	// the upper bucket's 10.
	for range 90 {
		m.Lag.Observe(0.05)
	}
	for range 10 {
		m.Lag.Observe(2)
	}
	m.Barrier.Observe(0.002)
	s := r.step(time.Second)
	if want := (90*0.05 + 10*2) / 100.0; math.Abs(s.lagMean-want) > 1e-9 {
		t.Errorf("lag mean %v, want %v", s.lagMean, want)
	}
	lo, hi := 0.001*math.Pow(2.5, 8), 0.001*math.Pow(2.5, 9)
	if want := lo + (hi-lo)*0.5; math.Abs(s.lagP95-want) > 1e-9 {
		t.Errorf("lag p95 %v, want %v", s.lagP95, want)
	}
	if lo, hi := 0.0001*math.Pow(2.5, 3), 0.0001*math.Pow(2.5, 4); s.rttP95 != lo+(hi-lo)*0.95 {
		t.Errorf("barrier p95 %v, want %v (95%% into the bucket of 0.002)", s.rttP95, lo+(hi-lo)*0.95)
	}
	// Beyond the highest bucket: the highest bound, as histogram_quantile.
	m.Lag.Observe(1e6)
	if s := r.step(time.Second); s.lagP95 != metrics.LagBuckets[len(metrics.LagBuckets)-1] {
		t.Errorf("overflow p95 %v, want %v", s.lagP95, metrics.LagBuckets[len(metrics.LagBuckets)-1])
	}
}

func TestHistoryRing(t *testing.T) {
	r := newRecorder(t, 5)
	t0 := r.now
	for i := 1; i <= 8; i++ {
		r.m.OutboundItems.WithLabelValues(metrics.ResultSent).Add(float64(i))
		r.step(time.Second)
	}
	all := r.h.samples(nil, 0)
	if len(all) != 5 {
		t.Fatalf("%d samples, want the ring's 5", len(all))
	}
	for i, s := range all {
		if want := t0.Add(time.Duration(4+i) * time.Second); !s.t.Equal(want) || s.out != float64(4+i) {
			t.Errorf("sample %d: t %v out %v, want t %v out %d", i, s.t, s.out, want, 4+i)
		}
	}
	since := r.h.samples(nil, t0.Add(6*time.Second).UnixMilli())
	if len(since) != 2 || since[0].out != 7 || since[1].out != 8 {
		t.Errorf("samples since t0+6s: %+v", since)
	}
	if got := r.h.last(nil, 3); len(got) != 3 || got[2].out != 8 {
		t.Errorf("last 3: %+v", got)
	}
}

func BenchmarkHistorySample(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry())
	m.InboundEvents.WithLabelValues("message", "in").Inc()
	m.Bounces.WithLabelValues("item-not-found").Inc()
	m.SetQueueDepth("out", 3)
	h := newHistory(historyLen, time.Now())
	var s snapshot
	s.read(m, "out")
	now := time.Now()
	h.baseline(now, &s)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		s.read(m, "out")
		h.record(now, &s)
	}
}
