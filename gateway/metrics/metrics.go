// Package metrics defines every Prometheus series of the gateway: the names
// are part of the external contract (README.md), the label values are
// bounded, and a label never carries a JID.
package metrics

import (
	"slices"
	"sync"

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
	QueueDepth       *prometheus.GaugeVec   // queue: set through SetQueueDepth
	Lag              prometheus.Histogram   // seconds
	Barrier          prometheus.Histogram   // seconds
	Connected        *prometheus.GaugeVec   // link: xmpp, amqp
	Reconnects       *prometheus.CounterVec // link
	Blocked          prometheus.Gauge       // broker flow control
	PublishFailures  *prometheus.CounterVec // what: event, dead_letter
	InboundBuffer    prometheus.Gauge       // events waiting for the broker
	OutboundInFlight prometheus.Gauge       // items written, not yet acknowledged
	Presence         *prometheus.CounterVec // type of presence stanza received (PresenceTypeLabel)
	ContactsOnline   prometheus.Gauge

	Standby             prometheus.Gauge     // 1 while another gateway holds the component
	MUCRooms            *prometheus.GaugeVec // state: joined, joining, failed
	MUCRejoins          prometheus.Counter
	MUCSelfPings        *prometheus.CounterVec // result: joined, lost, unknown
	Receipts            *prometheus.CounterVec // status: received, displayed, acknowledged
	ReceiptsUnsolicited prometheus.Counter     // receipts for ids we did not send, or from strangers
	ReceiptsSent        prometheus.Counter     // XEP-0184 receipts sent for confirmed inbound messages

	PresenceDropped     prometheus.Counter     // presence work dropped: the worker was behind
	PresenceSubscribers prometheus.Gauge       // subscribers in the store
	PresenceLimited     *prometheus.CounterVec // limit: PresenceLimitLabels

	depthPolled sync.Map // queue names whose depth was polled at least once
}

// LagBuckets span 1 ms to ~5 min: lag is small when the gateway keeps up and
// grows by minutes when it does not.
var LagBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 15)

// New registers the gateway's series, plus the standard go_ and process_
// collectors, on reg. Every labelled series whose label values are known in
// advance exists from the first scrape. (It is long because it is one
// declaration per series, and reads best as one list.)
func New(reg prometheus.Registerer) *Metrics {
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
			Buckets: LagBuckets,
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
		Standby: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_standby",
			Help: "1 while this gateway waits as a hot standby: another gateway holds the component (its lease in PostgreSQL, or the server refused a second connection).",
		}),
		MUCRooms: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xmppgw_muc_rooms",
			Help: "Configured group chats by state: joined, joining (a join in flight or waiting for its retry), failed (refused for good: ban, password, members-only, destroyed).",
		}, []string{"state"}),
		MUCRejoins: f.NewCounter(prometheus.CounterOpts{
			Name: "xmppgw_muc_rejoins_total",
			Help: "Rejoins of rooms that forgot the gateway: kicked, a failed self-ping, a bounce saying it is not an occupant.",
		}),
		MUCSelfPings: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_muc_self_pings_total",
			Help: "XEP-0410 self-pings of rooms by what they showed: joined, lost (the room forgot the gateway, or no answer in 30 s: it rejoins), unknown (a remote server error).",
		}, []string{"result"}),
		Receipts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_receipts_total",
			Help: "Receipts (XEP-0184) and chat markers (XEP-0333) received for messages sent with receipt: true, by status.",
		}, []string{"status"}),
		ReceiptsUnsolicited: f.NewCounter(prometheus.CounterOpts{
			Name: "xmppgw_receipts_unsolicited_total",
			Help: "Receipts and markers ignored: for an id the gateway did not send with a receipt request (or no longer remembers), or from a JID it did not send it to.",
		}),
		ReceiptsSent: f.NewCounter(prometheus.CounterOpts{
			Name: "xmppgw_inbound_receipts_sent_total",
			Help: "XEP-0184 receipts sent for inbound messages that asked for one, each after the broker confirmed the message's event.",
		}),
		PresenceDropped: f.NewCounter(prometheus.CounterOpts{
			Name: "xmppgw_presence_dropped_total",
			Help: "Presence stanzas dropped because the presence worker was behind.",
		}),
		PresenceSubscribers: f.NewGauge(prometheus.GaugeOpts{
			Name: "xmppgw_presence_subscribers",
			Help: "Subscriptions of contacts to the component's JIDs, in the store.",
		}),
		PresenceLimited: f.NewCounterVec(prometheus.CounterOpts{
			Name: "xmppgw_presence_limited_total",
			Help: "Presence not tracked, or subscriptions refused, because a cap was reached.",
		}, []string{"limit"}),
	}
	for _, l := range []string{LinkXMPP, LinkAMQP} {
		m.Connected.WithLabelValues(l)
		m.Reconnects.WithLabelValues(l)
	}
	m.OutboundItems.WithLabelValues(ResultSent)
	m.OutboundItems.WithLabelValues(ResultDeadLettered)
	m.OutboundItems.WithLabelValues(ResultParked)
	for _, l := range PresenceLimitLabels {
		m.PresenceLimited.WithLabelValues(l)
	}
	for _, l := range ReceiptStatusLabels {
		m.Receipts.WithLabelValues(l)
	}
	// Every label value known in advance exists at 0 from the start, so
	// that increase() and rate() see the first burst.
	for _, l := range RefusalReasons {
		m.InboundRefused.WithLabelValues(l)
	}
	for _, l := range []string{"event", "dead_letter"} {
		m.PublishFailures.WithLabelValues(l)
	}
	for _, l := range DeadLetterReasons {
		m.DeadLetters.WithLabelValues(l)
	}
	for _, l := range ConditionLabels {
		m.Bounces.WithLabelValues(l)
	}
	for _, l := range PresenceTypeLabels {
		m.Presence.WithLabelValues(l)
	}
	return m
}

// SetQueueDepth records a polled depth of queue q.
func (m *Metrics) SetQueueDepth(q string, n float64) {
	m.QueueDepth.WithLabelValues(q).Set(n)
	m.depthPolled.Store(q, struct{}{})
}

// QueueDepthPolled reports whether the depth of q was polled since the
// start: before that its series reads 0 (it exists from the first scrape),
// which does not mean empty.
func (m *Metrics) QueueDepthPolled(q string) bool {
	_, ok := m.depthPolled.Load(q)
	return ok
}

// SeedConfigured creates at 0 the series whose label values come from the
// configuration: events per kind and route (routes are inbound route
// localparts, "default" included) and the depth of every queue (0 until
// the first poll, as the contract allows). A reload calls it again for new
// routes and queues; series of removed ones stay.
func (m *Metrics) SeedConfigured(routes, queues []string) {
	for _, r := range routes {
		for _, k := range EventKinds {
			m.InboundEvents.WithLabelValues(k, r)
		}
	}
	for _, q := range queues {
		m.QueueDepth.WithLabelValues(q)
	}
}

// Label values.
const (
	// LinkXMPP and LinkAMQP are the link label of Connected and Reconnects.
	LinkXMPP = "xmpp"
	LinkAMQP = "amqp"

	// ResultSent and ResultDeadLettered are the result label of
	// OutboundItems.
	ResultSent         = "sent"
	ResultDeadLettered = "dead_lettered"
	// ResultParked counts groupchat items moved to the wait queue while
	// their room is being joined (they come back to the out queue).
	ResultParked = "parked"
)

// RefusalReasons are the values of the reason label of InboundRefused.
var RefusalReasons = []string{"broker_down", "buffer_full", "blocked", "returned", "nacked", "closed", "timeout", "shutdown"}

// DeadLetterReasons are the values of the reason label of DeadLetters: the
// classes of stanza.Reason, delivery_limit and not_joined.
var DeadLetterReasons = []string{"invalid_json", "invalid_utf8", "invalid_xml_char", "missing_field", "bad_field", "bad_jid",
	"text_too_long", "forbidden_from", "bad_stanza", "stanza_too_large", "delivery_limit", "not_joined"}

// ReceiptStatusLabels are the values of the status label of Receipts.
var ReceiptStatusLabels = []string{"received", "displayed", "acknowledged"}

// EventKinds are the values of the kind label of InboundEvents.
var EventKinds = []string{"message", "error", "presence", "subscription", "receipt"}

// ConditionLabels are the values ConditionLabel returns.
var ConditionLabels = []string{"bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
	"internal-server-error", "item-not-found", "jid-malformed", "not-acceptable",
	"not-allowed", "not-authorized", "policy-violation", "recipient-unavailable",
	"redirect", "registration-required", "remote-server-not-found",
	"remote-server-timeout", "resource-constraint", "service-unavailable",
	"subscription-required", "undefined-condition", "unexpected-request", "other"}

// PresenceTypeLabels are the values PresenceTypeLabel returns.
var PresenceTypeLabels = []string{"available", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error", "other"}

// PresenceLimitLabels are the values of the limit label of PresenceLimited.
var PresenceLimitLabels = []string{"contacts", "resources", "entries", "roster",
	"subscriptions_per_contact", "subscriptions_per_domain", "subscriptions_total", "subscriptions_jid_length", "subscribe_rate"}

// ConditionLabel keeps the Bounces label set bounded to the RFC 6120
// conditions (anything else is "other").
func ConditionLabel(c string) string {
	if slices.Contains(ConditionLabels, c) {
		return c
	}
	return "other"
}

// PresenceTypeLabel is the type label of Presence: a presence stanza's
// type ("" is available), or "other".
func PresenceTypeLabel(t string) string {
	if t == "" {
		return "available"
	}
	if slices.Contains(PresenceTypeLabels, t) {
		return t
	}
	return "other"
}
