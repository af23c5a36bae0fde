package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"xmppgw/component"
	"xmppgw/gateway/config"
	"xmppgw/gateway/leader"
	"xmppgw/gateway/metrics"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// dialTimeout bounds one connection attempt (dial and negotiation) to one
// server or broker; a walk through a list of n gets n times as long, shared
// equally among them.
const dialTimeout = 15 * time.Second

// walkTimeout bounds a walk through a list of n servers or brokers.
func walkTimeout(n int) time.Duration { return time.Duration(max(1, n)) * dialTimeout }

// standbyRetry is the base retry interval while another gateway holds the
// component.
const standbyRetry = 2 * time.Second

func (g *Gateway) componentConfig(cfg *Config) component.Config {
	x := cfg.XMPP
	return component.Config{
		Mode:          x.Mode,
		Server:        x.Server,
		Domain:        x.Domain,
		Secret:        x.Secret,
		JID:           x.JID,
		Password:      x.Password,
		TLS:           x.TLS,
		TLSCA:         x.TLSCA,
		TLSServerName: x.TLSServerName,
		Keepalive:     x.Keepalive,
		Version:       g.deps.Version,
		Logger:        g.log.With("component", "xmpp"),
		// Limits left zero: stanza's defaults bound an inbound stanza.
		OnBarrier: func(d time.Duration) { g.metrics.Barrier.Observe(d.Seconds()) },
	}
}

// runXMPP keeps one XMPP session up, redialling with backoff, until ctx is
// done. A rejected secret or unknown domain before the first successful
// session is fatal: it is a configuration error, not an outage.
//
// xmpp.server may list several servers: every dial walks the list from the
// first (component.Dial), so after a loss the gateway goes back to the
// first server as soon as it answers again; the backoff is between walks.
//
// With presence.lease_ttl (component mode, a PostgreSQL store) the gateway
// connects only while it holds the component's lease (gateway/leader):
// losing it, or failing to renew it in time, closes the session at once.
func (g *Gateway) runXMPP(ctx context.Context) error {
	cfg := g.cfg.Load()
	if cfg.XMPP.Mode != stanza.ModeComponent || cfg.Presence.LeaseTTL == 0 {
		return g.xmppLoop(ctx, ctx)
	}
	return g.xmppLeading(ctx, cfg)
}

// xmppLeading runs the XMPP link while this gateway holds the lease.
func (g *Gateway) xmppLeading(ctx context.Context, cfg *Config) error {
	log := g.log.With("component", "leader")
	bo := newBackoff()
	var lease *leader.Lease
	for lease == nil {
		octx, cancel := context.WithTimeout(ctx, dialTimeout)
		l, err := leader.Open(octx, leader.Options{URL: cfg.Presence.Store, Name: cfg.XMPP.Domain, TTL: cfg.Presence.LeaseTTL, Logger: g.log})
		cancel()
		if err == nil {
			lease = l
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := bo.next()
		log.Warn("cannot open the lease table in presence.store; retrying", "err", config.Redact(cfg, err.Error()), "retry_in", wait.Round(time.Millisecond))
		g.metrics.Standby.Set(1)
		if !sleep(ctx, wait) {
			return nil
		}
	}
	defer lease.Close()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var fatal error
	waiting := false
	standby := func() {
		if !waiting {
			log.Info("another gateway holds the component's lease; standing by", "domain", cfg.XMPP.Domain)
		}
		waiting = true
		g.metrics.Standby.Set(1)
	}
	lease.Lead(lctx, standby, func(leadCtx context.Context) {
		waiting = false
		g.metrics.Standby.Set(0)
		if err := g.xmppLoop(leadCtx, ctx); err != nil {
			fatal = err
			stop()
		}
	})
	return fatal
}

// xmppLoop keeps one XMPP session up until ctx is done; life is the
// gateway's own context: when ctx ends before it (the lease was lost) the
// session is closed at once rather than gracefully.
func (g *Gateway) xmppLoop(ctx, life context.Context) error {
	log := g.log.With("component", "xmpp")
	bo := newBackoff()
	connectedOnce, standingBy := false, false
	for {
		cfg := g.cfg.Load()
		dctx, cancel := context.WithTimeout(ctx, walkTimeout(len(component.SplitServers(cfg.XMPP.Server))))
		s, err := component.Dial(dctx, g.componentConfig(cfg), reader{g})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !connectedOnce && (errors.Is(err, component.ErrAuth) || errors.Is(err, component.ErrHostUnknown)) {
				return fmt.Errorf("%w: xmpp: %w (check xmpp.domain and xmpp.secret, or xmpp.jid and xmpp.password, in %s and on the server)", ErrConfig, err, cfg.Name())
			}
			wait := bo.next()
			if errors.Is(err, component.ErrConflict) {
				// Another gateway holds the component: stand by, and try
				// often so that the takeover is quick.
				wait = standbyRetry + time.Duration(rand.N(int64(standbyRetry)))
				if !standingBy {
					log.Info("another gateway holds the component; standing by", "server", cfg.XMPP.Server, "domain", cfg.XMPP.Domain)
				}
				standingBy = true
				g.metrics.Standby.Set(1)
			} else {
				log.Warn("xmpp connect failed", "server", cfg.XMPP.Server, "err", config.Redact(cfg, err.Error()), "retry_in", wait.Round(time.Millisecond))
			}
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		standingBy = false
		g.metrics.Standby.Set(0)
		if connectedOnce {
			g.metrics.Reconnects.WithLabelValues(metrics.LinkXMPP).Inc()
		}
		connectedOnce = true
		up := time.Now()
		log.Info("xmpp connected", "server", s.Server(), "addr", s.Addr().String())
		g.metrics.Connected.WithLabelValues(metrics.LinkXMPP).Set(1)
		g.sess.set(s)
		g.in.online(s)
		g.pres.Online(s)
		g.muc.Online(s)

		select {
		case <-s.Done():
			// The gauge first: whoever sees the gateway not ready sees
			// the link down too.
			g.metrics.Connected.WithLabelValues(metrics.LinkXMPP).Set(0)
			g.sess.set(nil)
			g.muc.Offline()
			log.Warn("xmpp connection lost", "server", s.Server(), "err", s.Err(), "up", time.Since(up).Round(time.Millisecond))
			bo.stable(time.Since(up))
		case <-ctx.Done():
			// The gauge first: whoever sees the gateway not ready sees
			// the link down too.
			g.metrics.Connected.WithLabelValues(metrics.LinkXMPP).Set(0)
			g.sess.set(nil)
			g.muc.Offline()
			closeIn := 5 * time.Second
			if life.Err() == nil {
				// The lease is lost: another gateway may act soon.
				closeIn = time.Second
				log.Warn("lease lost: closing the XMPP session now")
			}
			cctx, cancel := context.WithTimeout(context.Background(), closeIn)
			err := s.Close(cctx)
			cancel()
			log.Info("xmpp closed", "err", err)
			return nil
		}
		if !sleep(ctx, bo.next()) {
			return nil
		}
	}
}

// runPublisher keeps one publishing connection to the broker up. The
// topology is declared on every new connection, so that events find their
// queues even before anything is consumed.
func (g *Gateway) runPublisher(ctx context.Context) error {
	log := g.log.With("component", "amqp")
	bo := newBackoff()
	connectedOnce := false
	for {
		cfg := g.cfg.Load()
		dctx, cancel := context.WithTimeout(ctx, walkTimeout(len(queue.SplitURLs(cfg.AMQP.URL))))
		p, err := queue.DialPublisher(dctx, cfg.AMQP.URL, connName("publisher", cfg), g.log) // queue scopes its logger
		cancel()
		if err == nil {
			if err = p.Declare(cfg.Topology()); err != nil {
				_ = p.Close()
				if errors.Is(err, queue.ErrTopology) {
					return fmt.Errorf("%w: amqp: %w", ErrConfig, err)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait := bo.next()
			log.Warn("amqp connect failed", "url", queue.RedactURL(cfg.AMQP.URL), "err", config.Redact(cfg, err.Error()), "retry_in", wait.Round(time.Millisecond))
			if !sleep(ctx, wait) {
				return nil
			}
			continue
		}
		if connectedOnce {
			g.metrics.Reconnects.WithLabelValues(metrics.LinkAMQP).Inc()
		}
		connectedOnce = true
		up := time.Now()
		log.Info("amqp connected", "url", p.URL())
		g.metrics.Connected.WithLabelValues(metrics.LinkAMQP).Set(1)
		g.publisher.set(p)

		tick := time.NewTicker(time.Second)
	up:
		for {
			select {
			case <-p.Done():
				log.Warn("amqp connection lost", "url", p.URL(), "err", config.Redact(cfg, fmt.Sprint(p.Err())))
				break up
			case <-ctx.Done():
				break up
			case <-tick.C:
				if p.Blocked() {
					g.metrics.Blocked.Set(1)
				} else {
					g.metrics.Blocked.Set(0)
				}
			}
		}
		tick.Stop()
		bo.stable(time.Since(up))
		g.metrics.Connected.WithLabelValues(metrics.LinkAMQP).Set(0)
		g.metrics.Blocked.Set(0)
		g.publisher.set(nil)
		if ctx.Err() != nil {
			// The inbound loop has drained its buffer before ctx ends.
			err := p.Close()
			log.Info("amqp closed", "err", err)
			return nil
		}
		if !sleep(ctx, bo.next()) {
			return nil
		}
	}
}

// pollDepth samples the depth of every queue of the topology.
func (g *Gateway) pollDepth(ctx context.Context) {
	const every = 5 * time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if p := g.publisher.get(); p != nil {
			for _, q := range g.cfg.Load().Topology().Queues() {
				if n, _, err := p.QueueDepth(q); err == nil {
					g.metrics.SetQueueDepth(q, float64(n))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleep waits d or until ctx is done, reporting whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connName names a broker connection so that operators (and tests) can tell
// which gateway owns it in the management UI or rabbitmqctl: role, queue and
// process.
func connName(role string, cfg *Config) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("xmppgw %s %s %s/%d", role, cfg.AMQP.OutQueue, host, os.Getpid())
}
