package presence

import (
	"time"
	"unicode/utf8"
)

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
func (p *Service) allowNew(contact string) bool {
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
