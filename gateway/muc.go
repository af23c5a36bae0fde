package gateway

import (
	"xmppgw/gateway/httpapi"
	"xmppgw/gateway/muc"
	"xmppgw/stanza"
)

// mucConfig is the room manager's view of the muc section.
func mucConfig(cfg *Config) muc.Config {
	c := muc.Config{SelfPing: cfg.MUC.SelfPing, Mentions: cfg.MUC.Events == "mentions"}
	for _, r := range cfg.MUC.Rooms {
		c.Rooms = append(c.Rooms, muc.Room{JID: r.JID, Nick: cfg.RoomNick(r), Password: r.Password})
	}
	return c
}

// roomsStatus is the rooms for the status page.
func (g *Gateway) roomsStatus() []httpapi.Room {
	rs := g.muc.Rooms()
	if len(rs) == 0 {
		return nil
	}
	out := make([]httpapi.Room, len(rs))
	for i, r := range rs {
		out[i] = httpapi.Room{JID: r.JID, Nick: r.Nick, State: r.State, Since: r.Since, Why: r.Why}
	}
	return out
}

// mucFrom is the address the gateway joins rooms from: <default_from>@<domain>
// in component mode; none in client mode, where the server stamps the
// account's full JID.
func mucFrom(cfg *Config) string {
	if cfg.XMPP.Mode == stanza.ModeClient {
		return ""
	}
	return cfg.XMPP.DefaultFrom + "@" + cfg.XMPP.Domain
}
