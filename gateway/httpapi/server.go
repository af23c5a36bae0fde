// Package httpapi serves the gateway's HTTP endpoints: /metrics, /healthz,
// /readyz, /v1/presence/{jid}, the status page (GET /, /api/status) and the
// history it draws, within bounds on connections and time (limits.go).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"mellium.im/xmpp/jid"

	"xmppgw/gateway/config"
	"xmppgw/gateway/metrics"
	"xmppgw/gateway/presence"
)

// Presence is what the /v1/presence endpoint needs: the tracked presence
// of a contact (presence.Service implements it).
type Presence interface {
	Lookup(contact string) presence.Answer
}

// Options are what the HTTP endpoints need of the gateway.
type Options struct {
	// Registry is served on /metrics.
	Registry *prometheus.Registry
	// Metrics are read by the status page's history.
	Metrics *metrics.Metrics
	// Version is shown on the status page.
	Version string
	// Config returns the configuration in force.
	Config func() *config.Config
	// Links reports whether the XMPP session and the broker are up: the
	// gateway's one notion of readiness (/readyz, the status page).
	Links func() (xmpp, amqp bool)
	// XMPPServer returns the host:port of xmpp.server's list the session
	// is on, "" while down (nil: the status page shows xmpp.server).
	XMPPServer func() string
	Presence   Presence
	// Rooms returns the group chats and their state (nil: none).
	Rooms func() []Room
	// Logger receives the server's few log lines; nil discards them.
	Logger *slog.Logger
}

// Room is a group chat as the status page shows it.
type Room struct {
	JID   string    `json:"jid"`
	Nick  string    `json:"nick"`
	State string    `json:"state"` // joined, joining, failed
	Since time.Time `json:"since"`
	Why   string    `json:"why,omitempty"` // the last failure
}

// Server is the HTTP side of the gateway: /metrics, /healthz, /readyz,
// /v1/presence/{jid}, the status page and its history.
type Server struct {
	opt  Options
	hist atomic.Pointer[history] // the status page's samples while RecordHistory runs
}

// New returns a server; Serve serves it, RecordHistory feeds its status
// page.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opt: o}
}

// Handler serves the gateway's HTTP endpoints as on a listener that is not
// loopback: /v1/presence only if http.web_config authenticates clients
// (webconfig.go). Serve applies http.web_config (TLS, basic auth) around
// it.
func (srv *Server) Handler() http.Handler { return srv.handler(false) }

// handler serves the endpoints; loopback says whether the listener is
// reachable only from this host.
func (srv *Server) handler(loopback bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(srv.opt.Registry, promhttp.HandlerOpts{Registry: srv.opt.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		xmpp, amqp := srv.opt.Links()
		if !xmpp || !amqp {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte("xmpp " + upDown(xmpp) + "\namqp " + upDown(amqp) + "\n"))
	})
	srv.routesPresence(mux, srv.presenceGate(loopback))
	srv.routesStatus(mux)
	return mux
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Serve serves on ln until ctx is done, then shuts down (bounded). Every
// endpoint goes through exporter-toolkit's web.Serve with http.web_config
// (TLS, basic auth; plain HTTP when it is empty). Timeouts and a cap on
// connections bound what clients can hold (limits.go).
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	return srv.serveWith(ctx, newConnLimiter(ln, defaultHTTPLimits.maxConns), defaultHTTPLimits)
}

func (srv *Server) serveWith(ctx context.Context, ln *connLimiter, lim httpLimits) error {
	webConfig := srv.opt.Config().HTTP.WebConfig
	loopback := isLoopback(ln.Addr())
	hs := newHTTPServer(srv.handler(loopback), lim)
	hs.ConnState = ln.track
	if !loopback {
		if err := srv.presenceGate(false)(); err != nil {
			srv.opt.Logger.Warn("/v1/presence is refused on this listener", "addr", ln.Addr().String(), "why", err.Error())
		}
	}
	errc := make(chan error, 1)
	go func() {
		errc <- web.Serve(ln, hs, &web.FlagConfig{WebConfigFile: &webConfig}, srv.opt.Logger)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		return err
	}
}

// routesPresence adds GET /v1/presence/{jid}: whether the contact is online
// as far as the gateway knows (it only learns the presence of contacts it
// is subscribed to). An unknown JID answers online:false like a known one
// that is offline, so the endpoint does not tell who is a contact; the
// answer is not cached, and nothing about the JID reaches the metrics.
//
// gate says whether the endpoint may answer at all (presenceGate): when it
// refuses, the answer is 403 with the rule (never a detail of the web
// configuration, such as its path), and the JID is not looked at.
func (srv *Server) routesPresence(mux *http.ServeMux, gate func() error) {
	mux.HandleFunc("GET /v1/presence/{jid}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if gate() != nil {
			http.Error(w, "/v1/presence is refused: "+errPresenceClosed.Error(), http.StatusForbidden)
			return
		}
		j, err := jid.Parse(r.PathValue("jid"))
		if err != nil || j.Localpart() == "" && j.Domainpart() == "" {
			http.Error(w, "invalid JID", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(srv.opt.Presence.Lookup(j.Bare().String()))
	})
}
