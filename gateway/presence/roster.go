package presence

import "xmppgw/stanza"

// Client mode: the roster gate.
//
// The server delivers to the account both the presence of its roster
// contacts and directed presence from anybody. Only the first is tracked
// once the server has told the account's roster (a roster result after
// connect, then roster pushes): a contact counts while the account is
// subscribed to it (subscription "to" or "both"). Until a roster is known
// everything delivered is tracked, within the caps of presenceLimits.

// rosterEntry is one roster item as the server reports it.
type rosterEntry struct {
	jid          string // bare JID
	subscription string // none, to, from, both, remove
}

// Roster takes the account's roster (full) or a roster push from the XMPP
// read loop and hands it to the presence worker, never blocking. Of a full
// roster only the contacts we are subscribed to matter, so only those are
// queued. Component mode has no server roster: the session never delivers
// one, and one would be ignored.
func (p *Service) Roster(full bool, items []stanza.RosterItem) {
	if p.st != nil {
		return
	}
	entries := make([]rosterEntry, 0, len(items))
	for _, it := range items {
		if full && it.Subscription != "to" && it.Subscription != "both" {
			continue
		}
		entries = append(entries, rosterEntry{jid: it.JID, subscription: it.Subscription})
	}
	p.offerRoster(full, entries)
}

// offerRoster hands a roster result (full: it replaces what was known) or
// a roster push to the presence worker. It never blocks; a full queue
// drops it like any presence work. Entries past presenceMaxContacts are
// ignored.
func (p *Service) offerRoster(full bool, items []rosterEntry) {
	select {
	case p.jobs <- presJob{op: opRoster, roster: items, full: full}:
	default:
		p.m.PresenceDropped.Inc()
		if p.warn.OK() {
			p.log.Warn("presence worker behind: roster dropped")
		}
	}
}

// applyRoster runs on the worker.
func (p *Service) applyRoster(j *presJob) {
	if j.full || p.roster == nil {
		old := p.roster
		p.roster = make(map[string]struct{}, min(len(j.roster), presenceMaxContacts))
		p.addRoster(j.roster)
		for c := range old {
			if _, ok := p.roster[c]; !ok {
				p.dropContact(c)
			}
		}
		if j.full {
			// Tracked presence from contacts never in the roster (learnt
			// before it was known) goes too.
			p.mu.Lock()
			var gone []string
			for c := range p.contacts {
				if _, ok := p.roster[c]; !ok {
					gone = append(gone, c)
				}
			}
			p.mu.Unlock()
			for _, c := range gone {
				p.dropContact(c)
			}
		}
		return
	}
	p.addRoster(j.roster)
}

// addRoster applies entries over the known roster.
func (p *Service) addRoster(items []rosterEntry) {
	for _, it := range items {
		j, ok := p.parseBare(it.jid)
		if !ok {
			continue
		}
		switch it.subscription {
		case "to", "both":
			if _, ok := p.roster[j]; !ok && len(p.roster) >= presenceMaxContacts {
				p.limit("roster")
				continue
			}
			p.roster[j] = struct{}{}
		default:
			if _, ok := p.roster[j]; ok {
				delete(p.roster, j)
				p.dropContact(j)
			}
		}
	}
}

// parseBare normalises a JID to its bare form as tracked presence keys it.
func (p *Service) parseBare(s string) (string, bool) {
	a, ok := p.parse(&stanza.Presence{From: s})
	return a.contact, ok
}

// rosterAllows reports whether presence from contact may be tracked.
func (p *Service) rosterAllows(contact string) bool {
	if p.roster == nil {
		return true // not known yet
	}
	_, ok := p.roster[contact]
	return ok
}

// dropContact forgets everything tracked of contact, publishing
// unavailable for each resource that was available.
func (p *Service) dropContact(contact string) {
	p.mu.Lock()
	var locals []string
	if c := p.contacts[contact]; c != nil {
		for l := range c.views {
			locals = append(locals, l)
		}
	}
	p.mu.Unlock()
	for _, l := range locals {
		p.drop(l, contact, l)
	}
}
