// Package gateway runs xmppgw: it supervises the XMPP link, the broker
// connections, the outbound pipeline, the inbound publisher, presence and the
// HTTP endpoints. See docs/ARCHITECTURE.md.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"xmppgw/component"
	"xmppgw/gateway/config"
	"xmppgw/gateway/httpapi"
	"xmppgw/gateway/metrics"
	"xmppgw/gateway/muc"
	"xmppgw/gateway/presence"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// Deps are what the gateway gets from its caller.
type Deps struct {
	// Logger receives all logs; nil discards them.
	Logger *slog.Logger
	// LogLevel, when set, is adjusted on Reload to the new log.level.
	LogLevel *slog.LevelVar
	// Registry receives the metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Version is reported by XEP-0092 and the version command.
	Version string
}

// Gateway is one running bridge. Create it with New, run it with Run.
type Gateway struct {
	log     *slog.Logger
	deps    Deps
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	cfg atomic.Pointer[Config] // swapped by Reload

	sess      watch[*component.Session] // the current XMPP session, nil while down
	publisher watch[*queue.Publisher]   // the current publishing connection, nil while down

	in       *inbound
	out      *outbound
	pres     *presence.Service
	receipts *receiptBook // messages sent with receipt: true
	muc      *muc.Manager
	http     *httpapi.Server

	httpLn   net.Listener
	stopOnce sync.Once
	stopped  chan struct{} // closed by Stop
}

// New checks cfg and prepares a gateway. It opens nothing yet except the
// HTTP listener (so that a taken port is reported at once) and the presence
// store.
func New(cfg *Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Version == "" {
		deps.Version = "dev"
	}
	g := &Gateway{
		log:     deps.Logger,
		deps:    deps,
		reg:     deps.Registry,
		metrics: metrics.New(deps.Registry),
		stopped: make(chan struct{}),
	}
	g.cfg.Store(cfg)
	g.seedSeries(cfg)
	g.sess.init()
	g.publisher.init()
	g.in = newInbound(g)
	g.out = newOutbound(g)
	g.receipts = newReceiptBook(receiptBookSize)
	g.muc = muc.New(muc.Options{
		Log:     g.log,
		Metrics: muc.Metrics{Rooms: g.metrics.MUCRooms, Rejoins: g.metrics.MUCRejoins, SelfPings: g.metrics.MUCSelfPings},
		From:    mucFrom(cfg),
		Echo: func(ev *stanza.Event) {
			if ev.StanzaIDBy != "" && strings.HasPrefix(ev.From, ev.StanzaIDBy+"/") {
				g.receipts.alias(ev.StanzaID, ev.ID, ev.From)
			}
		},
	})
	g.muc.Configure(mucConfig(cfg))
	var err error
	if g.pres, err = g.newPresence(cfg); err != nil {
		return nil, err
	}
	// Beside the presence store, whose lock makes it this gateway's own
	// (client mode opens no store: no ledger either).
	lpath := ""
	if cfg.XMPP.Mode == stanza.ModeComponent {
		lpath = ledgerPath(cfg.Presence.Store, config.IsStoreURL(cfg.Presence.Store))
	}
	if g.out.ledger, err = openLedger(lpath, g.log); err != nil {
		g.log.Warn("no redelivery ledger: an item that crashes the process will not be bounded across restarts on a classic queue", "file", lpath, "err", err)
	}
	g.http = httpapi.New(httpapi.Options{
		Registry: g.reg,
		Metrics:  g.metrics,
		Version:  deps.Version,
		Config:   g.Config,
		Links:    g.links,
		XMPPServer: func() string {
			if s := g.sess.get(); s != nil {
				return s.Server()
			}
			return ""
		},
		Presence: g.pres,
		Rooms:    g.roomsStatus,
		Logger:   g.log.With("component", "http"),
	})
	if cfg.HTTP.Listen != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			g.pres.Close()
			g.out.ledger.close()
			return nil, fmt.Errorf("http.listen: %w", err)
		}
		g.httpLn = ln
	}
	return g, nil
}

// Config returns the configuration in force.
func (g *Gateway) Config() *Config { return g.cfg.Load() }

// HTTPAddr is the address the HTTP endpoints listen on ("" if disabled).
func (g *Gateway) HTTPAddr() string {
	if g.httpLn == nil {
		return ""
	}
	return g.httpLn.Addr().String()
}

// Ready reports whether both the XMPP session and the broker are up.
func (g *Gateway) Ready() bool {
	xmpp, amqp := g.links()
	return xmpp && amqp
}

// links reports which links are up: the one computation of readiness,
// for Ready, /readyz and the status page.
func (g *Gateway) links() (xmpp, amqp bool) {
	return g.sess.get() != nil, g.publisher.get() != nil
}

// Stop asks Run to drain and return (at once if it has not started); it
// does not wait. Safe to call from any goroutine, more than once.
func (g *Gateway) Stop() {
	g.stopOnce.Do(func() { close(g.stopped) })
}

// drainTimeout bounds each step of a graceful stop.
const drainTimeout = 15 * time.Second

// Run runs the gateway until ctx is cancelled (or Stop is called), then drains
// gracefully: stop consuming, write what was taken, wait for the last
// barrier, ack, announce unavailability, close the stream and the broker
// connections. It returns nil after a clean stop, or the fatal error that
// ended it (a configuration the servers reject).
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-g.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer g.pres.Close()
	defer g.out.ledger.close()

	// Each actor gets its own context so that the stop runs in order:
	// outbound drains first, then presence says goodbye, then the inbound
	// buffer drains, then the XMPP link and the broker connections close.
	linkCtx, stopLinks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLinks()
	inCtx, stopIn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIn()
	outCtx, stopOut := context.WithCancel(ctx)
	defer stopOut()

	links, linksCtx := errgroup.WithContext(linkCtx)
	links.Go(func() error { return g.runXMPP(linksCtx) })
	links.Go(func() error { return g.runPublisher(linksCtx) })
	links.Go(func() error { g.pollDepth(linksCtx); return nil })
	links.Go(func() error { g.http.RecordHistory(linksCtx); return nil })
	links.Go(func() error { return g.pres.Run(linksCtx) })
	links.Go(func() error { g.muc.Run(linksCtx.Done()); return nil })
	if g.httpLn != nil {
		links.Go(func() error { return g.http.Serve(linksCtx, g.httpLn) })
	}
	inDone := make(chan error, 1)
	go func() { inDone <- g.in.run(inCtx) }()
	outDone := make(chan error, 1)
	go func() { outDone <- g.out.run(outCtx) }()

	var fatal error
	select {
	case <-ctx.Done():
	case <-linksCtx.Done(): // a link failed fatally
	case fatal = <-outDone:
		outDone <- fatal
	}
	g.log.Info("stopping")
	stopOut()
	if err := <-outDone; err != nil && !errors.Is(err, context.Canceled) {
		fatal = errors.Join(fatal, err)
	}
	g.pres.Goodbye()
	stopIn()
	if err := <-inDone; err != nil && !errors.Is(err, context.Canceled) {
		fatal = errors.Join(fatal, err)
	}
	stopLinks()
	if err := links.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		fatal = errors.Join(fatal, err)
	}
	if fatal != nil {
		g.log.Error("stopped", "err", fatal)
		return fatal
	}
	g.log.Info("stopped")
	return nil
}

// watch holds the current value of a link and lets goroutines wait for it to
// change. The zero value is not ready: call init.
type watch[T comparable] struct {
	mu      sync.Mutex
	v       T
	changed chan struct{}
}

func (w *watch[T]) init() { w.changed = make(chan struct{}) }

func (w *watch[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v
}

// set stores v and wakes every waiter.
func (w *watch[T]) set(v T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.v = v
	close(w.changed)
	w.changed = make(chan struct{})
}

// next returns the current value and a channel closed at the next change.
func (w *watch[T]) next() (T, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v, w.changed
}

// await blocks until the value is not the zero value (or ctx is done).
func (w *watch[T]) await(ctx context.Context) (T, error) {
	var zero T
	for {
		v, ch := w.next()
		if v != zero {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-ch:
		}
	}
}

// encoderOptions are the stanza options for a session with address addr.
func (g *Gateway) encoderOptions(cfg *Config, addr string) stanza.Options {
	o := stanza.Options{
		Mode:           stanza.ModeComponent,
		Domain:         cfg.XMPP.Domain,
		DefaultFrom:    cfg.XMPP.DefaultFrom,
		DefaultType:    cfg.Outbound.DefaultType,
		MaxTextBytes:   cfg.Outbound.MaxTextBytes,
		MaxStanzaBytes: cfg.Outbound.MaxStanzaBytes,
	}
	if cfg.XMPP.Mode == stanza.ModeClient {
		o.Mode = stanza.ModeClient
		o.Account = addr
	}
	return o
}

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

// seedSeries creates at 0 the series whose label values cfg decides, so
// that every series exists from the first scrape.
func (g *Gateway) seedSeries(cfg *Config) {
	routes := []string{routeDefault}
	if cfg.XMPP.Mode == stanza.ModeComponent { // (routes apply to the component only)
		for local := range cfg.Inbound.Routes {
			routes = append(routes, local)
		}
	}
	g.metrics.SeedConfigured(routes, cfg.Topology().Queues())
}
