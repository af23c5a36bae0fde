package gateway

import (
	"log/slog"
	"reflect"
	"strings"
)

// ParseLevel maps log.level to a slog level (validated keys only).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// liveKeys can change without a restart; every other change is logged as
// needing one and is not applied.
var liveKeys = map[string]bool{
	"log.level":               true,
	"outbound.rate":           true,
	"outbound.default_type":   true,
	"outbound.max_text_bytes": true,
	// The stanza bound and the delivery limit are read per item.
	"outbound.max_stanza_bytes": true,
	"amqp.delivery_limit":       true,
	"inbound.routes":            true,
	"presence.status":           true,
	"presence.subscriptions":    true,
}

// Reload applies a new, already validated configuration: live keys take
// effect at once; changes to other keys are reported and ignored until the
// next restart.
func (g *Gateway) Reload(next *Config) {
	cur := g.cfg.Load()
	merged := *cur
	var applied, restart []string
	for _, d := range diffConfig(cur, next) {
		if liveKeys[d] {
			applied = append(applied, d)
		} else {
			restart = append(restart, d)
		}
	}
	merged.Log.Level = next.Log.Level
	merged.Outbound = next.Outbound
	merged.AMQP.DeliveryLimit = next.AMQP.DeliveryLimit
	merged.Inbound = next.Inbound
	merged.Presence.Status = next.Presence.Status
	merged.Presence.Subscriptions = next.Presence.Subscriptions
	g.cfg.Store(&merged)
	if g.deps.LogLevel != nil {
		g.deps.LogLevel.Set(ParseLevel(merged.Log.Level))
	}
	g.onReload(cur, &merged)
	if len(restart) > 0 {
		g.log.Warn("config reloaded; these keys need a restart and keep their old values", "keys", strings.Join(restart, ","))
	}
	g.log.Info("config reloaded", "applied", strings.Join(applied, ","))
}

// diffConfig lists the keys (section.key) whose values differ.
func diffConfig(a, b *Config) []string {
	var out []string
	av, bv := reflect.ValueOf(*a), reflect.ValueOf(*b)
	t := av.Type()
	for i := 0; i < t.NumField(); i++ {
		sec := t.Field(i).Tag.Get("mapstructure")
		if sec == "-" || sec == "" {
			continue
		}
		as, bs := av.Field(i), bv.Field(i)
		for j := 0; j < as.NumField(); j++ {
			if !reflect.DeepEqual(as.Field(j).Interface(), bs.Field(j).Interface()) {
				out = append(out, sec+"."+as.Type().Field(j).Tag.Get("mapstructure"))
			}
		}
	}
	return out
}

// onReload lets running parts pick up live changes. New route queues are
// declared at once, so that their first events are not returned as
// unroutable (a publisher that connects later declares them anyway).
func (g *Gateway) onReload(old, cur *Config) {
	g.out.reloaded(cur)
	g.pres.reloaded(old, cur)
	if !reflect.DeepEqual(old.Inbound.Routes, cur.Inbound.Routes) {
		if p := g.publisher.get(); p != nil {
			if err := p.Declare(g.topology(cur)); err != nil {
				g.log.Error("declaring the queues of the new routes failed", "err", err)
			}
		}
	}
}
