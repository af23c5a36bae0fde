package presence

import (
	"sort"

	"xmppgw/stanza"
)

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

// track applies an available or unavailable presence of a contact we are
// subscribed to, and publishes what changed. A new contact or resource past
// a cap (p.lim) is not tracked; known ones keep updating.
func (p *Service) track(pr *stanza.Presence, a *addrs) {
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
func (p *Service) room(c *contactState) string {
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
func (p *Service) forget(c *contactState, n int) {
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
func (p *Service) drop(local, contact, to string) {
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
func (p *Service) sweep() {
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
func (p *Service) settle(contact string, c *contactState, wasOnline bool) {
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
	p.m.ContactsOnline.Set(float64(p.nOnline))
}

func (p *Service) publish(evs []stanza.Event) {
	for i := range evs {
		p.log.Debug("contact presence", "from", evs[i].From, "type", evs[i].Type)
		p.emit(&evs[i])
	}
}

// Resource is one available resource of a contact.
type Resource struct {
	Resource string `json:"resource"`
	Show     string `json:"show,omitempty"`
	Status   string `json:"status,omitempty"`
	Priority int    `json:"priority"`
}

// Answer is what is known of a contact's presence (GET /v1/presence).
type Answer struct {
	JID       string     `json:"jid"`
	Online    bool       `json:"online"`
	Resources []Resource `json:"resources"`
}

// Lookup reports the tracked presence of a contact (bare JID).
func (p *Service) Lookup(contact string) Answer {
	ans := Answer{JID: contact, Resources: []Resource{}}
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
			ans.Resources = append(ans.Resources, Resource{Resource: r, Show: st.show, Status: st.status, Priority: st.priority})
		}
	}
	sort.Slice(ans.Resources, func(i, j int) bool { return ans.Resources[i].Resource < ans.Resources[j].Resource })
	ans.Online = len(ans.Resources) > 0
	return ans
}
