package gateway

import (
	"context"
	"net/http"

	"xmppgw/component"
	"xmppgw/stanza"
)

// presence answers subscriptions and probes for the component's JIDs.
//
// This first version answers statelessly per presence.subscriptions; the
// persistent store of subscribers, the tracking of contacts and the
// presence events are not built yet (issue 4).
type presence struct {
	g *Gateway
}

func newPresence(g *Gateway, _ *Config) (*presence, error) {
	return &presence{g: g}, nil
}

func (p *presence) online(*component.Session) {}
func (p *presence) goodbye()                  {}
func (p *presence) close()                    {}

// run is the presence worker; it returns when ctx is done.
func (p *presence) run(ctx context.Context) error { <-ctx.Done(); return nil }

func (g *Gateway) routesPresence(*http.ServeMux) {}

// Presence implements component.Inbound; it runs on the XMPP read loop and
// only writes small replies.
func (g *Gateway) Presence(s *component.Session, pr *stanza.Presence) {
	cfg := g.cfg.Load()
	if cfg.XMPP.Mode != ModeComponent {
		return
	}
	g.metrics.Presence.WithLabelValues(presenceTypeLabel(pr.Type)).Inc()
	var b []byte
	switch pr.Type {
	case "subscribe":
		switch cfg.Presence.Subscriptions {
		case "auto":
			b = stanza.AppendPresence(b, pr.To, pr.From, "", "subscribed", "", "")
			b = stanza.AppendPresence(b, pr.To, pr.From, "", "", "", cfg.Presence.Status)
		case "deny":
			b = stanza.AppendPresence(b, pr.To, pr.From, "", "unsubscribed", "", "")
		}
	case "probe":
		if cfg.Presence.Subscriptions == "auto" {
			b = stanza.AppendPresence(b, pr.To, pr.From, "", "", "", cfg.Presence.Status)
		}
	}
	if len(b) > 0 {
		_ = s.Write(b)
	}
}

func presenceTypeLabel(t string) string {
	switch t {
	case "", "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		if t == "" {
			return "available"
		}
		return t
	}
	return "other"
}

func (p *presence) reloaded(_, _ *Config) {}
