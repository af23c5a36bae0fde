package gateway

import (
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

// mucFrom is the address the gateway joins rooms from: <default_from>@<domain>
// in component mode; none in client mode, where the server stamps the
// account's full JID.
func mucFrom(cfg *Config) string {
	if cfg.XMPP.Mode == stanza.ModeClient {
		return ""
	}
	return cfg.XMPP.DefaultFrom + "@" + cfg.XMPP.Domain
}
