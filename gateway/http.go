package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"mellium.im/xmpp/jid"
)

// handler serves the gateway's HTTP endpoints.
func (g *Gateway) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		xmpp, amqp := g.sess.get() != nil, g.publisher.get() != nil
		if !xmpp || !amqp {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write([]byte("xmpp " + upDown(xmpp) + "\namqp " + upDown(amqp) + "\n"))
	})
	g.routesPresence(mux)
	g.routesStatus(mux)
	return mux
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// serveHTTP serves until ctx is done, then shuts down (bounded). Timeouts
// and a cap on connections bound what clients can hold (http_limit.go).
func (g *Gateway) serveHTTP(ctx context.Context) error {
	return g.serveHTTPWith(ctx, newConnLimiter(g.httpLn, defaultHTTPLimits.maxConns), defaultHTTPLimits)
}

func (g *Gateway) serveHTTPWith(ctx context.Context, ln *connLimiter, lim httpLimits) error {
	g.httpSrv = newHTTPServer(g.handler(), lim)
	g.httpSrv.ConnState = ln.track
	errc := make(chan error, 1)
	go func() { errc <- g.httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := g.httpSrv.Shutdown(sctx)
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
func (g *Gateway) routesPresence(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/presence/{jid}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		j, err := jid.Parse(r.PathValue("jid"))
		if err != nil || j.Localpart() == "" && j.Domainpart() == "" {
			http.Error(w, "invalid JID", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g.pres.Lookup(j.Bare().String()))
	})
}
