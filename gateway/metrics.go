package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the gateway's own Prometheus series (names fixed by the
// contract). Labels never carry a JID.
type Metrics struct {
	OutboundItems    *prometheus.CounterVec // result: sent, dead_lettered
	DeadLetters      *prometheus.CounterVec // reason: the stanza.Reason class
	Bounces          *prometheus.CounterVec // condition
	InboundEvents    *prometheus.CounterVec // kind, route
	InboundRefused   *prometheus.CounterVec // reason: buffer_full, broker_down, returned, nacked, closed
	QueueDepth       *prometheus.GaugeVec   // queue
	Lag              prometheus.Histogram   // seconds
	Barrier          prometheus.Histogram   // seconds
	Connected        *prometheus.GaugeVec   // link: xmpp, amqp
	Reconnects       *prometheus.CounterVec // link
	Blocked          prometheus.Gauge       // broker flow control
	PublishFailures  *prometheus.CounterVec // what: event, dead_letter
	InboundBuffer    prometheus.Gauge       // events waiting for the broker
	OutboundInFlight prometheus.Gauge       // items written, not yet acknowledged
	Presence         *prometheus.CounterVec // kind of presence work: subscribe, unsubscribe, probe, ...
	ContactsOnline   prometheus.Gauge
}

// lagBuckets span 1 ms to ~5 min: lag is small when the gateway keeps up and
// grows by minutes when it does not.
var lagBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 15)

// NewMetrics registers the gateway's series, plus the standard go_ and
// process_ collectors, on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		OutboundItems: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_outbound_items_total",
			Help: "Outbound items acknowledged to the broker, by result (sent to XMPP and confirmed by the server, or dead-lettered).",
		}, []string{"result"}),
		DeadLetters: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_outbound_dead_letters_total",
			Help: "Outbound items set aside in the dead-letter queue, by reason class.",
		}, []string{"reason"}),
		Bounces: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_outbound_bounces_total",
			Help: "Error stanzas the server or a recipient returned for our stanzas, by condition.",
		}, []string{"condition"}),
		InboundEvents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_inbound_events_total",
			Help: "Inbound events confirmed by the broker, by kind and route.",
		}, []string{"kind", "route"}),
		InboundRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_inbound_refused_total",
			Help: "Inbound messages answered with a stanza error because they could not be queued, by reason.",
		}, []string{"reason"}),
		QueueDepth: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xmppgw_queue_depth",
			Help: "Messages ready in a queue, polled from the broker.",
		}, []string{"queue"}),
		Lag: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "xmppgw_outbound_lag_seconds",
			Help:    "Time from enqueued_at (or the AMQP timestamp) to the server's confirmation of the item.",
			Buckets: lagBuckets,
		}),
		Barrier: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "xmppgw_barrier_seconds",
			Help:    "Round trip of the acknowledgement barrier (ping) on the XMPP stream.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}),
		Connected: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xmppgw_connected",
			Help: "1 while the link is up.",
		}, []string{"link"}),
		Reconnects: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_reconnects_total",
			Help: "Connections lost and re-established, by link.",
		}, []string{"link"}),
		Blocked: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_amqp_blocked",
			Help: "1 while the broker blocks publishing (memory or disk alarm).",
		}),
		PublishFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_publish_failures_total",
			Help: "Publishes to the broker that were not confirmed (nacked, returned, connection lost), by what was published.",
		}, []string{"what"}),
		InboundBuffer: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_inbound_buffered",
			Help: "Inbound events waiting to be confirmed by the broker.",
		}),
		OutboundInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_outbound_in_flight",
			Help: "Outbound items written to the XMPP stream and not yet acknowledged to the broker.",
		}),
		Presence: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_presence_stanzas_total",
			Help: "Presence stanzas handled, by type.",
		}, []string{"type"}),
		ContactsOnline: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_contacts_online",
			Help: "Contacts currently known to be available.",
		}),
	}
	for _, l := range []string{linkXMPP, linkAMQP} {
		m.Connected.WithLabelValues(l)
		m.Reconnects.WithLabelValues(l)
	}
	m.OutboundItems.WithLabelValues(resultSent)
	m.OutboundItems.WithLabelValues(resultDeadLettered)
	return m
}

const (
	linkXMPP = "xmpp"
	linkAMQP = "amqp"

	resultSent         = "sent"
	resultDeadLettered = "dead_lettered"
)
