package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"xmppgw/component"
	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// Presence and subscriptions.
//
// A component has no server-side roster, so the gateway plays the server's
// part of RFC 6121 for every JID of its domain ("local JIDs"):
//
//   - Subscriptions of contacts to local JIDs ("subscribers") and of local
//     JIDs to contacts ("subscriptions", pending or approved) persist in the
//     bbolt store at presence.store (store.go). Only bare JIDs are stored.
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
type presence struct {
	g      *Gateway
	log    *slog.Logger
	st     *store // nil in client mode
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

	mu       sync.Mutex // guards contacts, nOnline and nEntries
	contacts map[string]*contactState
	nOnline  int // contacts with an available resource
	nEntries int // tracked resources, summed over contacts and local JIDs
	lim      presenceLimits

	warn      sampler // worker behind
	limitWarn sampler // a cap refused something
	storeWarn sampler // the store failed
}

// contactState is what we know of one contact (by bare JID): for each local
// JID that receives its presence, its available resources.
type contactState struct {
	views map[string]map[string]resState
	n     int // entries over all views
}

type resState struct {
	show, status string
	priority     int
	gen          uint64
}

func (c *contactState) available() bool {
	for _, v := range c.views {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// presenceQueue bounds the presence work waiting for the worker.
const presenceQueue = 1024

// Bounds of tracked presence. An entry is one resource of one contact as
// one local JID sees it: a few hundred bytes plus its status, so the caps
// hold tracked presence under some 50 MiB even when every entry is built
// by an attacker (JID parts of 1 KiB, full statuses), and far below that
// in practice.
const (
	// presenceMaxStatus is the longest status text kept (bytes, cut at a
	// UTF-8 boundary). Clients show a line or two; the decoder allows
	// 256 KiB, which times the queue and the entries would be gigabytes.
	presenceMaxStatus = 1024
	// presenceMaxContacts bounds the contacts tracked at once.
	presenceMaxContacts = 10_000
	// presenceMaxResources bounds one contact's entries: a person has a
	// few devices, each seen by the few local JIDs it is subscribed to.
	presenceMaxResources = 16
	// presenceMaxEntries bounds the entries of all contacts together.
	presenceMaxEntries = 20_000
)

// presenceSubscribeRate bounds the new subscribers (auto mode) or
// forwarded subscribe requests (forward mode) of one contact domain per
// minute. Each new subscriber costs fsynced store writes; without it one
// JID subscribing and unsubscribing in a loop keeps the worker busy with
// writes (no cap is ever reached) and legitimate presence is dropped.
// Ten a second is far above what people of one server do by hand.
const presenceSubscribeRate = 600

// subRate counts new subscriptions per contact domain in a one-minute
// window; the map holds only domains that were let through, so it is
// bounded by the rate the store can write.
type subRate struct {
	start time.Time
	n     map[string]int
}

// allowNew reports whether contact's domain may add one more subscription
// in this minute, and counts it.
func (p *presence) allowNew(contact string) bool {
	now := p.now()
	if p.subRate.n == nil || now.Sub(p.subRate.start) >= time.Minute || now.Before(p.subRate.start) {
		p.subRate = subRate{start: now, n: make(map[string]int)}
	}
	d := contactDomain(contact)
	if p.subRate.n[d] >= presenceSubscribeRate {
		return false
	}
	p.subRate.n[d]++
	return true
}

// presenceLimits are the caps in force (tests lower them).
type presenceLimits struct{ contacts, resources, entries int }

var defaultPresenceLimits = presenceLimits{contacts: presenceMaxContacts, resources: presenceMaxResources, entries: presenceMaxEntries}

// presenceSettle is how long after a connect the answers to our probes may
// take before unconfirmed resources count as gone.
const presenceSettle = 10 * time.Second

// goodbyeTimeout bounds goodbye: writing and the server's confirmation.
const goodbyeTimeout = 5 * time.Second

// presenceWriteChunk is the size at which batched presence bytes are
// written.
const presenceWriteChunk = 32 << 10

// presenceWriter is what presence needs of an XMPP session
// (component.Session implements it).
type presenceWriter interface {
	Write(p []byte) error
	WriteWithBarrier(p []byte) (uint64, error)
	Confirmed() uint64
}

type presOp int

const (
	opInbound presOp = iota // a presence stanza received
	opSent                  // a subscription presence item a worker sent
	opRoster                // client mode: the account's roster, or a push
)

type presJob struct {
	op     presOp
	w      presenceWriter
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
	w    presenceWriter
	done chan struct{} // closed when handled (goodbye)
}

func newPresence(g *Gateway, cfg *Config) (*presence, error) {
	p := &presence{
		g:        g,
		log:      g.log.With("component", "presence"),
		jobs:     make(chan presJob, presenceQueue),
		ctl:      make(chan ctlReq, 16),
		contacts: make(map[string]*contactState),
		lim:      defaultPresenceLimits,
		now:      time.Now,
	}
	p.emit = g.in.offerEvent
	if cfg.XMPP.Mode != stanza.ModeComponent {
		if j, err := jid.Parse(cfg.XMPP.JID); err == nil {
			p.self = j.Bare().String()
		}
		return p, nil
	}
	d, err := jid.Parse(cfg.XMPP.Domain)
	if err != nil {
		return nil, err // Validate checked it
	}
	p.domain = d.String()
	if p.st, err = openStore(cfg.Presence.Store, storeLockTimeout); err != nil {
		return nil, err
	}
	p.countSubscribers()
	return p, nil
}

func (p *presence) close() {
	if p.st != nil {
		if err := p.st.close(); err != nil {
			p.log.Warn("closing the presence store", "err", err)
		}
	}
}

// Presence implements component.Inbound: it runs on the XMPP read loop and
// only hands the stanza to the presence worker, never blocking.
func (g *Gateway) Presence(s *component.Session, pr *stanza.Presence) {
	g.metrics.Presence.WithLabelValues(metrics.PresenceTypeLabel(pr.Type)).Inc()
	g.pres.offer(s, pr)
}

func (p *presence) offer(w presenceWriter, pr *stanza.Presence) {
	j := presJob{op: opInbound, w: w, pr: *pr}
	if len(j.pr.Status) > presenceMaxStatus {
		// a copy, so that the long original is not kept alive
		j.pr.Status = strings.Clone(truncateUTF8(j.pr.Status, presenceMaxStatus))
	}
	select {
	case p.jobs <- j:
	default:
		p.g.metrics.PresenceDropped.Inc()
		if p.warn.ok() {
			p.log.Warn("presence worker behind: presence dropped", "type", pr.Type)
		}
	}
}

// sent is the outbound pipeline's hook: a presence item was written. It
// never blocks; only subscription types matter.
func (p *presence) sent(info *stanza.Info) {
	if p.st == nil || info.Kind != "presence" {
		return
	}
	switch info.PresenceType {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
	default:
		return
	}
	var w presenceWriter
	if s := p.g.sess.get(); s != nil {
		w = s
	}
	select {
	case p.jobs <- presJob{op: opSent, w: w, pr: stanza.Presence{Type: info.PresenceType, From: info.From, To: info.To}}:
	default:
		p.g.metrics.PresenceDropped.Inc()
		if p.warn.ok() {
			p.log.Warn("presence worker behind: subscription item not recorded", "type", info.PresenceType)
		}
	}
}

// online is called after each XMPP connect.
func (p *presence) online(s *component.Session) {
	p.control(ctlReq{op: ctlOnline, w: s})
}

// reloaded announces a changed presence.status.
func (p *presence) reloaded(old, cur *Config) {
	if old.Presence.Status == cur.Presence.Status || p.st == nil {
		return
	}
	if s := p.g.sess.get(); s != nil {
		p.control(ctlReq{op: ctlAnnounce, w: s})
	}
}

func (p *presence) control(r ctlReq) {
	select {
	case p.ctl <- r:
	default:
		p.log.Warn("presence worker behind: control request dropped", "op", int(r.op))
	}
}

// goodbye sends unavailable presence to every subscriber and waits (bounded)
// until the server confirmed it. It runs during a graceful stop while the
// session is still up.
func (p *presence) goodbye() {
	if p.st == nil {
		return
	}
	s := p.g.sess.get()
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

// run is the presence worker; it returns when ctx is done.
func (p *presence) run(ctx context.Context) error {
	p.running.Store(true)
	defer p.running.Store(false)
	var sweep *time.Timer
	var sweepC <-chan time.Time
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
		}
	}
}

func (p *presence) handleCtl(r ctlReq) {
	switch r.op {
	case ctlOnline:
		p.gen++
		if p.st != nil {
			p.gone = false
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

// announce sends available presence (with the current status) from each
// local JID to its subscribers, and with probe set a probe to each contact
// that approved our subscription.
func (p *presence) announce(w presenceWriter, probe bool) {
	status := p.g.cfg.Load().Presence.Status
	b := p.buf[:0]
	n := 0
	err := p.st.eachSubscriber(func(local, contact string) error {
		b = stanza.AppendPresence(b, local, contact, "", "available", "", status)
		n++
		return p.maybeWrite(w, &b)
	})
	m := 0
	if err == nil && probe {
		err = p.st.eachSubscription(func(local, contact string, st subState) error {
			if st != subApproved {
				return nil
			}
			m++
			b = stanza.AppendPresence(b, local, contact, "", "probe", "", "")
			return p.maybeWrite(w, &b)
		})
	}
	if err == nil {
		err = w.Write(b)
	}
	p.buf = b[:0]
	if err != nil {
		p.log.Warn("announcing presence", "err", err)
		return
	}
	p.log.Info("presence announced", "subscribers", n, "probes", m)
}

func (p *presence) maybeWrite(w presenceWriter, b *[]byte) error {
	if len(*b) < presenceWriteChunk {
		return nil
	}
	err := w.Write(*b)
	*b = (*b)[:0]
	return err
}

// sayGoodbye writes unavailable from each local JID to its subscribers and
// waits until the server answered a barrier written after them.
func (p *presence) sayGoodbye(w presenceWriter) {
	p.gone = true
	b := p.buf[:0]
	n := 0
	err := p.st.eachSubscriber(func(local, contact string) error {
		b = stanza.AppendPresence(b, local, contact, "", "unavailable", "", "")
		n++
		return p.maybeWrite(w, &b)
	})
	var seq uint64
	if err == nil {
		seq, err = w.WriteWithBarrier(b)
	}
	p.buf = b[:0]
	if err != nil {
		p.log.Warn("goodbye", "err", err)
		return
	}
	deadline := time.Now().Add(goodbyeTimeout)
	for w.Confirmed() < seq {
		if time.Now().After(deadline) {
			p.log.Warn("goodbye not confirmed by the server", "subscribers", n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.log.Info("unavailable presence sent", "subscribers", n)
}

// addrs are the parsed addresses of a presence stanza.
type addrs struct {
	from, to       jid.JID
	contact, local string // bare JIDs
}

func (p *presence) parse(pr *stanza.Presence) (addrs, bool) {
	var a addrs
	var err error
	if a.from, err = jid.Parse(pr.From); err != nil || pr.From == "" {
		return a, false
	}
	if pr.To != "" {
		if a.to, err = jid.Parse(pr.To); err != nil {
			return a, false
		}
		a.local = a.to.Bare().String()
	}
	a.contact = a.from.Bare().String()
	return a, true
}

// handle runs one job on the worker.
func (p *presence) handle(j *presJob) {
	switch j.op {
	case opSent:
		p.handleSent(j)
		return
	case opRoster:
		p.applyRoster(j)
		return
	}
	pr := &j.pr
	a, ok := p.parse(pr)
	if !ok {
		p.log.Debug("presence with a bad address ignored", "type", pr.Type)
		return
	}
	if p.st == nil { // client mode: only track
		if a.contact != p.self {
			switch pr.Type {
			case "available", "unavailable":
				if !p.rosterAllows(a.contact) {
					p.log.Debug("presence from outside the roster ignored", "from", pr.From)
					return
				}
				p.track(pr, &a)
			case "error":
				p.drop(a.local, a.contact, pr.To)
			}
		}
		return
	}
	if a.to.Domainpart() != p.domain || a.from.Domainpart() == p.domain {
		// not for us, or from ourselves: nothing a server would do
		return
	}
	var err error
	switch pr.Type {
	case "subscribe":
		err = p.onSubscribe(j.w, pr, &a)
	case "unsubscribe":
		err = p.onUnsubscribe(j.w, pr, &a)
	case "subscribed":
		var st subState
		if st, err = p.st.subscription(a.local, a.contact); err == nil && st == subPending {
			err = p.st.setSubscription(a.local, a.contact, subApproved)
			p.log.Debug("subscription approved", "local", a.local, "contact", a.contact)
		}
	case "unsubscribed":
		if _, err = p.st.removeSubscription(a.local, a.contact); err == nil {
			p.drop(a.local, a.contact, pr.To)
		}
	case "probe":
		err = p.onProbe(j.w, pr, &a)
	case "available", "unavailable":
		var st subState
		if st, err = p.st.subscription(a.local, a.contact); err == nil && st == subApproved {
			p.track(pr, &a)
		}
	case "error":
		// Our subscribe or probe bounced, or the contact's server is gone:
		// what we knew of its presence no longer holds.
		p.drop(a.local, a.contact, pr.To)
	}
	if err != nil && p.storeWarn.ok() {
		p.log.Error("presence store", "type", pr.Type, "err", err)
	}
}

// write writes b to w if there is a session; failures only mean the
// session died (the server resends what it must after a reconnect).
func (p *presence) write(w presenceWriter, b []byte) {
	if w == nil || len(b) == 0 {
		return
	}
	if err := w.Write(b); err != nil {
		p.log.Debug("presence write failed", "err", err)
	}
}

func (p *presence) status() string { return p.g.cfg.Load().Presence.Status }

func (p *presence) onSubscribe(w presenceWriter, pr *stanza.Presence, a *addrs) error {
	mode := p.g.cfg.Load().Presence.Subscriptions
	b := p.buf[:0]
	defer func() { p.buf = b[:0] }()
	if mode == "deny" {
		if removed, err := p.st.removeSubscriber(a.local, a.contact); err != nil {
			return err
		} else if removed {
			p.countSubscribers()
		}
		b = stanza.AppendPresence(b, a.local, a.contact, pr.ID, "unsubscribed", "", "")
		p.write(w, b)
		return nil
	}
	already, err := p.st.isSubscriber(a.local, a.contact)
	if err != nil {
		return err
	}
	if mode == "forward" && !already {
		// a worker's approval could not be recorded past a cap
		if err := p.st.canAdd(a.contact); err != nil {
			p.refuse(w, pr, a, storeLimit(err))
			return nil
		}
		if !p.allowNew(a.contact) {
			p.refuse(w, pr, a, "subscribe_rate")
			return nil
		}
		p.emit(&stanza.Event{Kind: "subscription", ID: pr.ID, Type: "subscribe", From: pr.From, To: pr.To})
		return nil
	}
	if !already {
		if err := p.st.canAdd(a.contact); err != nil {
			p.refuse(w, pr, a, storeLimit(err))
			return nil
		}
		if !p.allowNew(a.contact) {
			p.refuse(w, pr, a, "subscribe_rate")
			return nil
		}
		if _, err := p.st.addSubscriber(a.local, a.contact); errors.Is(err, ErrStoreFull) {
			p.refuse(w, pr, a, storeLimit(err))
			return nil
		} else if err != nil {
			return err // not approved: the contact's server asks again later
		}
		p.countSubscribers()
		p.log.Debug("subscriber added", "local", a.local, "contact", a.contact)
	}
	b = stanza.AppendPresence(b, a.local, a.contact, pr.ID, "subscribed", "", "")
	if !p.gone {
		b = stanza.AppendPresence(b, a.local, a.contact, "", "available", "", p.status())
	}
	if mode == "auto" {
		st, err := p.st.subscription(a.local, a.contact)
		if err != nil {
			p.write(w, b)
			return err
		}
		if st == subNone {
			// Past a cap of our own subscriptions we do not ask back: the
			// contact is approved all the same.
			if err := p.st.setSubscription(a.local, a.contact, subPending); errors.Is(err, ErrStoreFull) {
				p.limit(storeLimit(err))
			} else if err != nil {
				p.write(w, b)
				return err
			} else {
				b = stanza.AppendPresence(b, a.local, a.contact, "", "subscribe", "", "")
			}
		}
	}
	p.write(w, b)
	return nil
}

// refuse answers a subscribe that the cap named limit refused with
// unsubscribed (RFC 6121 §3.2.1); nothing is stored.
func (p *presence) refuse(w presenceWriter, pr *stanza.Presence, a *addrs, limit string) {
	p.limit(limit)
	p.log.Debug("subscription refused", "local", a.local, "contact", a.contact, "limit", limit)
	b := stanza.AppendPresence(p.buf[:0], a.local, a.contact, pr.ID, "unsubscribed", "", "")
	p.write(w, b)
	p.buf = b[:0]
}

// limit counts a refusal by the cap named l and logs it at most once a
// second.
func (p *presence) limit(l string) {
	p.g.metrics.PresenceLimited.WithLabelValues(l).Inc()
	if p.limitWarn.ok() {
		p.log.Warn("presence cap reached: not tracked or refused (xmppgw_presence_limited_total counts each)", "limit", l)
	}
}

// storeLimit is the limit label of a store's ErrStoreFull.
func storeLimit(err error) string {
	switch storeFullLimit(err) {
	case "contact":
		return "subscriptions_per_contact"
	case "domain":
		return "subscriptions_per_domain"
	case "length":
		return "subscriptions_jid_length"
	}
	return "subscriptions_total"
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (p *presence) onUnsubscribe(w presenceWriter, pr *stanza.Presence, a *addrs) error {
	removed, err := p.st.removeSubscriber(a.local, a.contact)
	if err != nil {
		return err
	}
	if removed {
		// Confirmed only to a subscriber: a server ignores the unsubscribe
		// of a stranger (RFC 6121 §3.3), and so write nothing for it.
		p.countSubscribers()
		p.log.Debug("subscriber removed", "local", a.local, "contact", a.contact)
		b := stanza.AppendPresence(p.buf[:0], a.local, a.contact, pr.ID, "unsubscribed", "", "")
		b = stanza.AppendPresence(b, a.local, a.contact, "", "unavailable", "", "")
		p.write(w, b)
		p.buf = b[:0]
	}
	if p.g.cfg.Load().Presence.Subscriptions == "forward" {
		p.emit(&stanza.Event{Kind: "subscription", ID: pr.ID, Type: "unsubscribe", From: pr.From, To: pr.To})
	}
	return nil
}

func (p *presence) onProbe(w presenceWriter, pr *stanza.Presence, a *addrs) error {
	sub, err := p.st.isSubscriber(a.local, a.contact)
	if err != nil {
		return err
	}
	var b []byte
	switch {
	case !sub:
		b = stanza.AppendPresence(p.buf[:0], a.local, a.contact, "", "unsubscribed", "", "")
	case p.gone:
		b = stanza.AppendPresence(p.buf[:0], a.local, pr.From, pr.ID, "unavailable", "", "")
	default:
		b = stanza.AppendPresence(p.buf[:0], a.local, pr.From, pr.ID, "available", "", p.status())
	}
	p.write(w, b)
	p.buf = b[:0]
	return nil
}

// handleSent records what a worker's subscription item did.
func (p *presence) handleSent(j *presJob) {
	pr := &j.pr
	// The item goes from a local JID to a contact: swap to reuse parse.
	a, ok := p.parse(&stanza.Presence{From: pr.To, To: pr.From})
	if !ok || a.to.Domainpart() != p.domain {
		return
	}
	var err error
	b := p.buf[:0]
	switch pr.Type {
	case "subscribed":
		var added bool
		if added, err = p.st.addSubscriber(a.local, a.contact); errors.Is(err, ErrStoreFull) {
			p.limit(storeLimit(err))
			err = nil
		} else if added {
			p.countSubscribers()
			if !p.gone {
				b = stanza.AppendPresence(b, a.local, a.contact, "", "available", "", p.status())
			}
		}
	case "unsubscribed":
		var removed bool
		if removed, err = p.st.removeSubscriber(a.local, a.contact); removed {
			p.countSubscribers()
			b = stanza.AppendPresence(b, a.local, a.contact, "", "unavailable", "", "")
		}
	case "subscribe":
		var st subState
		if st, err = p.st.subscription(a.local, a.contact); err == nil && st == subNone {
			if err = p.st.setSubscription(a.local, a.contact, subPending); errors.Is(err, ErrStoreFull) {
				p.limit(storeLimit(err))
				err = nil
			}
		}
	case "unsubscribe":
		if _, err = p.st.removeSubscription(a.local, a.contact); err == nil {
			p.drop(a.local, a.contact, a.local)
		}
	}
	p.write(j.w, b)
	p.buf = b[:0]
	if err != nil && p.storeWarn.ok() {
		p.log.Error("presence store", "item", pr.Type, "err", err)
	}
}

func (p *presence) countSubscribers() {
	if n, _, err := p.st.counts(); err == nil {
		p.g.metrics.PresenceSubscribers.Set(float64(n))
	}
}

// track applies an available or unavailable presence of a contact we are
// subscribed to, and publishes what changed. A new contact or resource past
// a cap (p.lim) is not tracked; known ones keep updating.
func (p *presence) track(pr *stanza.Presence, a *addrs) {
	res := a.from.Resourcepart()
	var evs []stanza.Event
	p.mu.Lock()
	c := p.contacts[a.contact]
	wasOnline := c != nil && c.available()
	if pr.Type == "unavailable" {
		if c != nil {
			view := c.views[a.local]
			if res == "" {
				// unavailable from the bare JID: no resource is left
				for r := range view {
					evs = append(evs, unavailableEvent(a.contact, r, pr.To, pr.Status))
				}
				p.forget(c, len(view))
				delete(c.views, a.local)
			} else if _, ok := view[res]; ok {
				delete(view, res)
				p.forget(c, 1)
				evs = append(evs, unavailableEvent(a.contact, res, pr.To, pr.Status))
			}
		}
	} else {
		var old resState
		had := false
		if c != nil {
			old, had = c.views[a.local][res] // a nil view reads as empty
		}
		if !had {
			if l := p.room(c); l != "" {
				p.mu.Unlock()
				p.limit(l)
				p.log.Debug("presence not tracked", "from", pr.From, "limit", l)
				return
			}
			if c == nil {
				c = &contactState{views: make(map[string]map[string]resState)}
				p.contacts[a.contact] = c
			}
			if c.views[a.local] == nil {
				c.views[a.local] = make(map[string]resState)
			}
			c.n++
			p.nEntries++
		}
		c.views[a.local][res] = resState{show: pr.Show, status: pr.Status, priority: pr.Priority, gen: p.gen}
		if !had || old.show != pr.Show || old.status != pr.Status {
			evs = append(evs, stanza.Event{Kind: "presence", Type: "available", From: pr.From, To: pr.To,
				Show: pr.Show, Status: pr.Status})
		}
	}
	p.settle(a.contact, c, wasOnline)
	p.mu.Unlock()
	p.publish(evs)
}

// room names the cap that a new entry of contact c (nil: a new contact)
// would pass, "" if there is room; p.mu is held.
func (p *presence) room(c *contactState) string {
	switch {
	case c == nil && len(p.contacts) >= p.lim.contacts:
		return "contacts"
	case c != nil && c.n >= p.lim.resources:
		return "resources"
	case p.nEntries >= p.lim.entries:
		return "entries"
	}
	return ""
}

// forget counts n entries of c as gone; p.mu is held.
func (p *presence) forget(c *contactState, n int) {
	c.n -= n
	p.nEntries -= n
}

func unavailableEvent(contact, res, to, status string) stanza.Event {
	from := contact
	if res != "" {
		from += "/" + res
	}
	return stanza.Event{Kind: "presence", Type: "unavailable", From: from, To: to, Status: status}
}

// drop forgets the tracked presence that local receives from contact,
// publishing unavailable for each resource that was available.
func (p *presence) drop(local, contact, to string) {
	var evs []stanza.Event
	p.mu.Lock()
	c := p.contacts[contact]
	if c != nil {
		wasOnline := c.available()
		for r := range c.views[local] {
			evs = append(evs, unavailableEvent(contact, r, to, ""))
		}
		p.forget(c, len(c.views[local]))
		delete(c.views, local)
		p.settle(contact, c, wasOnline)
	}
	p.mu.Unlock()
	p.publish(evs)
}

// sweep ends the resources that no answer confirmed since the last connect.
func (p *presence) sweep() {
	var evs []stanza.Event
	p.mu.Lock()
	for contact, c := range p.contacts {
		wasOnline := c.available()
		for local, view := range c.views {
			for r, st := range view {
				if st.gen < p.gen {
					delete(view, r)
					p.forget(c, 1)
					evs = append(evs, unavailableEvent(contact, r, local, ""))
				}
			}
			if len(view) == 0 {
				delete(c.views, local)
			}
		}
		p.settle(contact, c, wasOnline)
	}
	p.mu.Unlock()
	p.publish(evs)
}

// settle keeps the online count and forgets empty contacts; p.mu is held.
func (p *presence) settle(contact string, c *contactState, wasOnline bool) {
	if c == nil {
		return
	}
	now := c.available()
	switch {
	case now && !wasOnline:
		p.nOnline++
	case !now && wasOnline:
		p.nOnline--
	}
	for local, view := range c.views {
		if len(view) == 0 {
			delete(c.views, local)
		}
	}
	if len(c.views) == 0 {
		delete(p.contacts, contact)
	}
	p.g.metrics.ContactsOnline.Set(float64(p.nOnline))
}

func (p *presence) publish(evs []stanza.Event) {
	for i := range evs {
		p.log.Debug("contact presence", "from", evs[i].From, "type", evs[i].Type)
		p.emit(&evs[i])
	}
}

// presenceResource is one available resource in the endpoint's answer.
type presenceResource struct {
	Resource string `json:"resource"`
	Show     string `json:"show,omitempty"`
	Status   string `json:"status,omitempty"`
	Priority int    `json:"priority"`
}

type presenceAnswer struct {
	JID       string             `json:"jid"`
	Online    bool               `json:"online"`
	Resources []presenceResource `json:"resources"`
}

// lookup reports the tracked presence of a contact (bare JID).
func (p *presence) lookup(contact string) presenceAnswer {
	ans := presenceAnswer{JID: contact, Resources: []presenceResource{}}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.contacts[contact]
	if c == nil {
		return ans
	}
	// A resource seen by several local JIDs is reported once, as the first
	// local JID (in order) sees it, so that answers are deterministic.
	locals := make([]string, 0, len(c.views))
	for l := range c.views {
		locals = append(locals, l)
	}
	sort.Strings(locals)
	seen := map[string]bool{}
	for _, l := range locals {
		for r, st := range c.views[l] {
			if seen[r] {
				continue
			}
			seen[r] = true
			ans.Resources = append(ans.Resources, presenceResource{Resource: r, Show: st.show, Status: st.status, Priority: st.priority})
		}
	}
	sort.Slice(ans.Resources, func(i, j int) bool { return ans.Resources[i].Resource < ans.Resources[j].Resource })
	ans.Online = len(ans.Resources) > 0
	return ans
}

// routesPresence adds GET /v1/presence/{jid}: whether the contact is online
// as far as the gateway knows (it only learns the presence of contacts it
// is subscribed to). An unknown JID answers online:false like a known one
// that is offline, so the endpoint does not tell who is a contact; the
// answer is not cached, and nothing about the JID reaches the metrics.
func (g *Gateway) routesPresence(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/presence/{jid}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		j, err := jid.Parse(r.PathValue("jid"))
		if err != nil || j.Localpart() == "" && j.Domainpart() == "" {
			http.Error(w, "invalid JID", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g.pres.lookup(j.Bare().String()))
	})
}
