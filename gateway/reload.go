package gateway

import (
	"reflect"
	"strings"

	"xmppgw/gateway/config"
)

// Reload applies a new, already validated configuration: live keys take
// effect at once; changes to other keys are reported and ignored until the
// next restart (config.Merge).
func (g *Gateway) Reload(next *Config) {
	cur := g.cfg.Load()
	merged, applied, restart := config.Merge(cur, next)
	g.cfg.Store(merged)
	g.seedSeries(merged)
	if g.deps.LogLevel != nil {
		g.deps.LogLevel.Set(config.ParseLevel(merged.Log.Level))
	}
	g.onReload(cur, merged)
	if len(restart) > 0 {
		g.log.Warn("config reloaded; these keys need a restart and keep their old values", "keys", strings.Join(restart, ","))
	}
	g.log.Info("config reloaded", "applied", strings.Join(applied, ","))
}

// onReload lets running parts pick up live changes. New route queues are
// declared at once, so that their first events are not returned as
// unroutable (a publisher that connects later declares them anyway).
func (g *Gateway) onReload(old, cur *Config) {
	g.out.reloaded(cur)
	if !reflect.DeepEqual(old.MUC, cur.MUC) {
		g.muc.Configure(mucConfig(cur))
	}
	if old.Presence.Status != cur.Presence.Status {
		g.pres.StatusChanged()
	}
	if !reflect.DeepEqual(old.Inbound.Routes, cur.Inbound.Routes) {
		if p := g.publisher.get(); p != nil {
			if err := p.Declare(cur.Topology()); err != nil {
				g.log.Error("declaring the queues of the new routes failed", "err", err)
			}
		}
	}
}
