package gateway

import (
	"xmppgw/component"
	"xmppgw/gateway/config"
	"xmppgw/gateway/presence"
	"xmppgw/stanza"
)

// newPresence builds the presence service with what it needs of the
// gateway: the current session, the live presence settings, and the inbound
// path for its events.
func (g *Gateway) newPresence(cfg *Config) (*presence.Service, error) {
	return presence.New(presence.Options{
		Mode:    cfg.XMPP.Mode,
		Domain:  cfg.XMPP.Domain,
		JID:     cfg.XMPP.JID,
		Store:   cfg.Presence.Store,
		Logger:  g.log,
		Metrics: g.metrics,
		Emit:    g.in.offerEvent,
		Session: func() presence.Writer {
			if s := g.sess.get(); s != nil {
				return s
			}
			return nil // not a typed nil in the interface
		},
		Settings: func() config.PresenceConfig { return g.cfg.Load().Presence },
	})
}

// Presence implements component.Inbound: it runs on the XMPP read loop and
// only hands the stanza to the presence worker, never blocking.
func (g *Gateway) Presence(s *component.Session, pr *stanza.Presence) {
	g.pres.Offer(s, pr)
}

// The gateway takes the roster in client mode.
var _ component.RosterInbound = (*Gateway)(nil)

// Roster implements component.RosterInbound: it hands the roster to the
// presence worker, never blocking.
func (g *Gateway) Roster(_ *component.Session, full bool, items []stanza.RosterItem) {
	g.pres.Roster(full, items)
}
