package presence

import (
	"errors"

	"mellium.im/xmpp/jid"

	"xmppgw/stanza"
)

// addrs are the parsed addresses of a presence stanza.
type addrs struct {
	from, to       jid.JID
	contact, local string // bare JIDs
}

func (p *Service) parse(pr *stanza.Presence) (addrs, bool) {
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

// handle runs one job on the worker. A job that would change the store
// while it is unavailable waits in p.deferred (behind any that already
// wait, so that the changes keep their order).
func (p *Service) handle(j *presJob) {
	changes := p.st != nil && changesStore(j)
	if changes && len(p.deferred) > 0 {
		p.replay()
		if len(p.deferred) > 0 {
			p.deferJob(j)
			return
		}
	}
	err := p.run(j)
	if changes && errors.Is(err, ErrStoreUnavailable) {
		p.deferJob(j)
		return
	}
	p.storeError(j, err)
}

// storeError logs a failure of the store, at most once a second.
func (p *Service) storeError(j *presJob, err error) {
	if err == nil || !p.storeWarn.OK() {
		return
	}
	if j.op == opSent {
		p.log.Error("presence store", "item", j.pr.Type, "err", err)
	} else {
		p.log.Error("presence store", "type", j.pr.Type, "err", err)
	}
}

// changesStore reports whether j may change the store.
func changesStore(j *presJob) bool {
	switch j.op {
	case opSent:
		return true
	case opInbound:
		switch j.pr.Type {
		case "subscribe", "unsubscribe", "subscribed", "unsubscribed":
			return true
		}
	}
	return false
}

// run runs one job; it returns the store's error, if any.
func (p *Service) run(j *presJob) error {
	switch j.op {
	case opSent:
		return p.handleSent(j)
	case opRoster:
		p.applyRoster(j)
		return nil
	}
	pr := &j.pr
	a, ok := p.parse(pr)
	if !ok {
		p.log.Debug("presence with a bad address ignored", "type", pr.Type)
		return nil
	}
	if p.st == nil { // client mode: only track
		if a.contact != p.self {
			switch pr.Type {
			case "available", "unavailable":
				if !p.rosterAllows(a.contact) {
					p.log.Debug("presence from outside the roster ignored", "from", pr.From)
					return nil
				}
				p.track(pr, &a)
			case "error":
				p.drop(a.local, a.contact, pr.To)
			}
		}
		return nil
	}
	if a.to.Domainpart() != p.domain || a.from.Domainpart() == p.domain {
		// not for us, or from ourselves: nothing a server would do
		return nil
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
	return err
}

// write writes b to w if there is a session; failures only mean the
// session died (the server resends what it must after a reconnect).
func (p *Service) write(w Writer, b []byte) {
	if w == nil || len(b) == 0 {
		return
	}
	if err := w.Write(b); err != nil {
		p.log.Debug("presence write failed", "err", err)
	}
}

func (p *Service) status() string { return p.opt.Settings().Status }

func (p *Service) onSubscribe(w Writer, pr *stanza.Presence, a *addrs) error {
	mode := p.opt.Settings().Subscriptions
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
	if !already && !p.admitNew(w, pr, a) {
		// past a cap (in forward mode a worker's approval could not be
		// recorded), or past the rate of new subscriptions
		return nil
	}
	if mode == "forward" && !already {
		p.emit(&stanza.Event{Kind: "subscription", ID: pr.ID, Type: "subscribe", From: pr.From, To: pr.To})
		return nil
	}
	if !already {
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

// admitNew reports whether a new subscriber may be added under the caps
// of the store and the rate of new subscriptions; if not, the subscribe is
// refused.
func (p *Service) admitNew(w Writer, pr *stanza.Presence, a *addrs) bool {
	if err := p.st.canAdd(a.contact); err != nil {
		p.refuse(w, pr, a, storeLimit(err))
		return false
	}
	if !p.allowNew(a.contact) {
		p.refuse(w, pr, a, "subscribe_rate")
		return false
	}
	return true
}

// refuse answers a subscribe that the cap named limit refused with
// unsubscribed (RFC 6121 §3.2.1); nothing is stored.
func (p *Service) refuse(w Writer, pr *stanza.Presence, a *addrs, limit string) {
	p.limit(limit)
	p.log.Debug("subscription refused", "local", a.local, "contact", a.contact, "limit", limit)
	b := stanza.AppendPresence(p.buf[:0], a.local, a.contact, pr.ID, "unsubscribed", "", "")
	p.write(w, b)
	p.buf = b[:0]
}

// limit counts a refusal by the cap named l and logs it at most once a
// second.
func (p *Service) limit(l string) {
	p.m.PresenceLimited.WithLabelValues(l).Inc()
	if p.limitWarn.OK() {
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

func (p *Service) onUnsubscribe(w Writer, pr *stanza.Presence, a *addrs) error {
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
	if p.opt.Settings().Subscriptions == "forward" {
		p.emit(&stanza.Event{Kind: "subscription", ID: pr.ID, Type: "unsubscribe", From: pr.From, To: pr.To})
	}
	return nil
}

func (p *Service) onProbe(w Writer, pr *stanza.Presence, a *addrs) error {
	sub, err := p.st.isSubscriber(a.local, a.contact)
	if err != nil {
		// The store cannot tell (PostgreSQL down, a contact not in
		// memory): no answer rather than unsubscribed, which would cancel
		// the contact's subscription (RFC 6121 §4.3.2). Its server probes
		// again at the contact's next login.
		p.log.Debug("probe not answered: the store cannot tell", "local", a.local, "contact", a.contact, "err", err)
		return nil
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
func (p *Service) handleSent(j *presJob) error {
	pr := &j.pr
	// The item goes from a local JID to a contact: swap to reuse parse.
	a, ok := p.parse(&stanza.Presence{From: pr.To, To: pr.From})
	if !ok || a.to.Domainpart() != p.domain {
		return nil
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
	return err
}

func (p *Service) countSubscribers() {
	if n, _, err := p.st.counts(); err == nil {
		p.m.PresenceSubscribers.Set(float64(n))
	}
}
