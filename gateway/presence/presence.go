// Package presence plays the server's part of RFC 6121 for the gateway:
// presence and subscriptions.
//
// A component has no server-side roster, so the gateway plays the server's
// part of RFC 6121 for every JID of its domain ("local JIDs"):
//
//   - Subscriptions of contacts to local JIDs ("subscribers") and of local
//     JIDs to contacts ("subscriptions", pending or approved) persist in the
//     store at presence.store (the store interface, storage.go): a bbolt
//     file (store.go), or PostgreSQL shared by the gateways of one
//     component (store_pg.go), re-read after each connect. Only bare JIDs
//     are stored.
//   - While PostgreSQL is down (outage.go) nothing is answered for lack of
//     data: probes of subscribers held in memory are answered available,
//     others not at all (never unsubscribed); changes wait, in order and
//     bounded, until the store is back, and a subscribe is answered only
//     once its outcome is stored.
//   - presence.subscriptions decides a contact's subscribe request: auto
//     approves (subscribed, then available presence with presence.status,
//     then a subscribe back unless one is pending or approved), forward
//     publishes a `subscription` event and lets workers answer with
//     `kind: presence` items (subscribed/unsubscribed), deny answers
//     unsubscribed. A contact already subscribed gets subscribed again
//     without a new decision in auto and forward (RFC 6121 §3.1.3).
//   - unsubscribe from a contact takes effect at once in every mode (it is
//     not a request): the subscriber is forgotten, answered with
//     unsubscribed and unavailable; in forward mode workers also get a
//     `subscription` event of type unsubscribe. unsubscribed from a contact
//     ends (or denies) our subscription and drops its tracked presence.
//     subscribed from a contact approves a pending subscription of ours; one
//     we never asked for is ignored (RFC 6121 §3.1.6).
//   - Items that workers send are watched (a non-blocking hook in the
//     outbound pipeline): subscribed records a subscriber and sends it our
//     available presence, unsubscribed forgets it and sends unavailable,
//     subscribe records a pending subscription, unsubscribe ends ours.
//   - Probes (RFC 6121 §4.3.2): a subscriber gets available presence with
//     presence.status (the gateway's JIDs are available while it is
//     connected); anybody else gets unsubscribed.
//   - After every connect: available presence from each local JID to each of
//     its subscribers, and a probe to each contact whose approval we hold,
//     to learn their state. On a graceful stop: unavailable to every
//     subscriber, behind a barrier that the server answers before the
//     stream closes. A changed presence.status (SIGHUP) is announced again.
//   - Contacts' presence (available/unavailable, show, status) is tracked in
//     memory per contact, per local JID that receives it, per resource, and
//     only from contacts we are subscribed to (approved). A change is a
//     `presence` event addressed like the stanza, so inbound.routes send it
//     to the site of the local JID. GET /v1/presence/{jid} reports it.
//     Tracked state outlives a lost connection; after the next connect,
//     resources that the probes' answers do not confirm within
//     presenceSettle go unavailable.
//
// Bounds (an outside JID chooses what it sends): statuses are cut to
// presenceMaxStatus bytes before they are queued; tracked presence is
// capped by presenceLimits (contacts, entries per contact, entries in
// all), past which new contacts or resources are not tracked while known
// ones keep updating; the store caps subscriptions (store.go), past which
// a new subscribe is refused with unsubscribed. Each refusal is counted in
// xmppgw_presence_limited_total{limit} and logged at warn at most once a
// second, without JIDs.
//
// In client mode the server keeps the roster and answers subscriptions and
// probes itself: the gateway opens no store and handles no subscription,
// but it still tracks the presence the server delivers (other than the
// account's own resources), publishes it as events and answers the
// endpoint. Once the server has told the roster, only contacts the account
// is subscribed to are tracked (presence_roster.go): a stranger's directed
// presence grows nothing.
//
// Threads: the XMPP read loop only hands stanzas to one presence worker over
// a bounded channel (the store fsyncs on every change), dropping and
// counting when it is full (xmppgw_presence_dropped_total); the worker does
// all store access and writes. The tracked state is read by the HTTP
// handler under a mutex. JIDs appear in debug logs only, never in metrics.
package presence

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"xmppgw/gateway/config"
	"xmppgw/gateway/internal/lograte"
	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// Service is the presence worker and what it knows. Create it with New.
type Service struct {
	log    *slog.Logger
	m      *metrics.Metrics
	opt    Options
	st     store  // nil in client mode
	domain string // component mode: the component's domain
	self   string // client mode: the account's bare JID, once known

	jobs chan presJob
	ctl  chan ctlReq
	// emit publishes an event (tests replace it).
	emit func(*stanza.Event)

	running atomic.Bool

	// worker-only state
	gone    bool      // goodbye said: announce nothing more
	gen     uint64    // incremented at each connect, for the sweep
	sweepAt time.Time // zero: no sweep due
	buf     []byte
	roster  map[string]struct{} // client mode: contacts we are subscribed to; nil until known
	subRate subRate             // new subscribers per contact domain in this minute
	now     func() time.Time
	// deferred are the jobs that would change the store while it is
	// unavailable (PostgreSQL down), in order, at most presenceDeferMax;
	// they run when it is back.
	deferred []presJob

	mu       sync.Mutex // guards contacts, nOnline and nEntries
	contacts map[string]*contactState
	nOnline  int // contacts with an available resource
	nEntries int // tracked resources, summed over contacts and local JIDs
	lim      presenceLimits

	warn      lograte.Sampler // worker behind
	limitWarn lograte.Sampler // a cap refused something
	storeWarn lograte.Sampler // the store failed
}

// Options are what the presence service needs of the gateway.
type Options struct {
	Mode   stanza.Mode
	Domain string // component mode: the component's domain
	JID    string // client mode: the account's JID
	Store  string // component mode: presence.store (a file path or a postgres:// URL)

	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Emit queues an event for the broker; it must not block.
	Emit func(*stanza.Event)
	// Session returns the current XMPP session, nil while there is none.
	Session func() Writer
	// Settings returns the presence section in force (a reload changes
	// it).
	Settings func() config.PresenceConfig
}

// presenceQueue bounds the presence work waiting for the worker.
const presenceQueue = 1024

// presenceSettle is how long after a connect the answers to our probes may
// take before unconfirmed resources count as gone.
const presenceSettle = 10 * time.Second

// goodbyeTimeout bounds goodbye: writing and the server's confirmation.
const goodbyeTimeout = 5 * time.Second

// Writer is what presence needs of an XMPP session (component.Session
// implements it).
type Writer interface {
	Write(p []byte) error
	WriteWithBarrier(p []byte) (uint64, error)
	Confirmed() uint64
	// Notify is signalled (capacity 1) whenever Confirmed grows.
	Notify() <-chan struct{}
}

type presOp int

const (
	opInbound presOp = iota // a presence stanza received
	opSent                  // a subscription presence item a worker sent
	opRoster                // client mode: the account's roster, or a push
)

type presJob struct {
	op     presOp
	w      Writer
	pr     stanza.Presence // opSent: Type, From, To of the item
	roster []rosterEntry   // opRoster
	full   bool            // opRoster: a whole roster, not a push
}

type ctlOp int

const (
	ctlOnline   ctlOp = iota // a new session is up
	ctlAnnounce              // presence.status changed
	ctlGoodbye               // graceful stop
)

type ctlReq struct {
	op   ctlOp
	w    Writer
	done chan struct{} // closed when handled (goodbye)
}

// New prepares the service; in component mode it opens the store. Run
// runs its worker; Close closes the store.
func New(o Options) (*Service, error) {
	p := &Service{
		log:      o.Logger.With("component", "presence"),
		m:        o.Metrics,
		opt:      o,
		emit:     o.Emit,
		jobs:     make(chan presJob, presenceQueue),
		ctl:      make(chan ctlReq, 16),
		contacts: make(map[string]*contactState),
		lim:      defaultPresenceLimits,
		now:      time.Now,
	}
	if o.Mode != stanza.ModeComponent {
		if j, err := jid.Parse(o.JID); err == nil {
			p.self = j.Bare().String()
		}
		return p, nil
	}
	d, err := jid.Parse(o.Domain)
	if err != nil {
		return nil, err // Validate checked it
	}
	p.domain = d.String()
	if p.st, err = openStore(o.Store, p.domain, p.log); err != nil {
		return nil, err
	}
	p.countSubscribers()
	return p, nil
}

// Close closes the store (component mode).
func (p *Service) Close() {
	if p.st != nil {
		if err := p.st.close(); err != nil {
			p.log.Warn("closing the presence store", "err", err)
		}
	}
}

// Offer hands a received presence stanza to the worker. It runs on the
// XMPP read loop and never blocks: when the worker is behind, the stanza is
// dropped and counted.
func (p *Service) Offer(w Writer, pr *stanza.Presence) {
	p.m.Presence.WithLabelValues(metrics.PresenceTypeLabel(pr.Type)).Inc()
	j := presJob{op: opInbound, w: w, pr: *pr}
	if len(j.pr.Status) > presenceMaxStatus {
		// a copy, so that the long original is not kept alive
		j.pr.Status = strings.Clone(truncateUTF8(j.pr.Status, presenceMaxStatus))
	}
	select {
	case p.jobs <- j:
	default:
		p.m.PresenceDropped.Inc()
		if p.warn.OK() {
			p.log.Warn("presence worker behind: presence dropped", "type", pr.Type)
		}
	}
}

// Sent is the outbound pipeline's hook: a presence item was written. It
// never blocks; only subscription types matter.
func (p *Service) Sent(info *stanza.Info) {
	if p.st == nil || info.Kind != "presence" {
		return
	}
	switch info.PresenceType {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
	default:
		return
	}
	w := p.opt.Session()
	select {
	case p.jobs <- presJob{op: opSent, w: w, pr: stanza.Presence{Type: info.PresenceType, From: info.From, To: info.To}}:
	default:
		p.m.PresenceDropped.Inc()
		if p.warn.OK() {
			p.log.Warn("presence worker behind: subscription item not recorded", "type", info.PresenceType)
		}
	}
}

// Online is called after each XMPP connect, with the new session.
func (p *Service) Online(w Writer) {
	p.control(ctlReq{op: ctlOnline, w: w})
}

// StatusChanged announces a changed presence.status (after a reload).
func (p *Service) StatusChanged() {
	if p.st == nil {
		return
	}
	if w := p.opt.Session(); w != nil {
		p.control(ctlReq{op: ctlAnnounce, w: w})
	}
}

func (p *Service) control(r ctlReq) {
	select {
	case p.ctl <- r:
	default:
		p.log.Warn("presence worker behind: control request dropped", "op", int(r.op))
	}
}

// Goodbye sends unavailable presence to every subscriber and waits (bounded)
// until the server confirmed it. It runs during a graceful stop while the
// session is still up.
func (p *Service) Goodbye() {
	if p.st == nil {
		return
	}
	s := p.opt.Session()
	if s == nil {
		return
	}
	if !p.running.Load() {
		p.sayGoodbye(s)
		return
	}
	done := make(chan struct{})
	select {
	case p.ctl <- ctlReq{op: ctlGoodbye, w: s, done: done}:
	case <-time.After(goodbyeTimeout):
		p.log.Warn("goodbye: presence worker busy")
		return
	}
	select {
	case <-done:
	case <-time.After(2 * goodbyeTimeout):
		p.log.Warn("goodbye timed out")
	}
}

// Run is the presence worker; it returns when ctx is done.
func (p *Service) Run(ctx context.Context) error {
	p.running.Store(true)
	defer p.running.Store(false)
	var sweep *time.Timer
	var sweepC <-chan time.Time
	var storeBack <-chan struct{}
	if p.st != nil {
		storeBack = p.st.ready()
	}
	defer func() {
		if sweep != nil {
			sweep.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-p.jobs:
			p.handle(&j)
		case r := <-p.ctl:
			p.handleCtl(r)
			if r.op == ctlOnline {
				if sweep != nil {
					sweep.Stop()
				}
				sweep = time.NewTimer(presenceSettle)
				sweepC = sweep.C
			}
		case <-sweepC:
			sweepC = nil
			p.sweep()
		case <-storeBack:
			p.replay()
		}
	}
}

func (p *Service) handleCtl(r ctlReq) {
	switch r.op {
	case ctlOnline:
		p.gen++
		if p.st != nil {
			p.gone = false
			// A takeover: read what the previous active gateway wrote.
			// If the store is unavailable, announce what memory holds.
			if err := p.st.refresh(); err != nil {
				p.log.Warn("presence store not re-read after connect: announcing the subscriptions held in memory", "err", err)
			}
			p.countSubscribers()
			p.announce(r.w, true)
		}
	case ctlAnnounce:
		if !p.gone {
			p.announce(r.w, false)
		}
	case ctlGoodbye:
		p.sayGoodbye(r.w)
	}
	if r.done != nil {
		close(r.done)
	}
}
