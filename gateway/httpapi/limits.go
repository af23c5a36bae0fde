package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Bounds of the HTTP server. Its clients are a Prometheus scraper, health
// checks and an operator's browser: small GET requests, small answers,
// nothing streamed. The bounds keep anyone who can reach http.listen from
// holding descriptors, goroutines or memory.
const (
	// httpReadHeaderTimeout bounds the wait for a request's headers, and so
	// how long a connection that never sends anything is kept.
	httpReadHeaderTimeout = 5 * time.Second
	// httpReadTimeout bounds reading a whole request (no endpoint takes a
	// body).
	httpReadTimeout = 10 * time.Second
	// httpWriteTimeout bounds writing an answer; /metrics, the largest,
	// is a few hundred KiB written in milliseconds.
	httpWriteTimeout = 30 * time.Second
	// httpIdleTimeout closes a keep-alive connection between requests;
	// longer than the usual 15–30 s scrape interval would buy little.
	httpIdleTimeout = 60 * time.Second
	// httpMaxHeaderBytes bounds a request's headers (Go's default is
	// 1 MiB): room for basic auth and cookies.
	httpMaxHeaderBytes = 16 << 10
	// httpMaxConns bounds the connections held at once: each costs a
	// descriptor, a goroutine and some 10 KiB of buffers. A newcomer past
	// the cap evicts the connection idle the longest (never one in the
	// middle of a request), so a flood of idle connections cannot lock
	// out the scraper and health checks.
	httpMaxConns = 256
)

// httpLimits are the bounds in force (tests lower them).
type httpLimits struct {
	readHeader, read, write, idle time.Duration
	maxHeader, maxConns           int
}

var defaultHTTPLimits = httpLimits{
	readHeader: httpReadHeaderTimeout, read: httpReadTimeout, write: httpWriteTimeout,
	idle: httpIdleTimeout, maxHeader: httpMaxHeaderBytes, maxConns: httpMaxConns,
}

func newHTTPServer(h http.Handler, lim httpLimits) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    lim.maxHeader,
	}
}

// connLimiter is a listener that holds at most max connections. It learns
// which are idle from the server's ConnState hook (track): a connection
// accepted past the cap evicts the one idle the longest (new and never
// used, or between requests), or is closed at once if every held
// connection is in the middle of a request.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]*heldConn
}

type heldConn struct {
	active bool      // in the middle of a request
	since  time.Time // when it last became idle
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: make(map[net.Conn]*heldConn)}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit(c) {
			return c, nil
		}
		_ = c.Close()
	}
}

// admit makes room for c and holds it; false if there is none.
func (l *connLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.max {
		var victim net.Conn
		var oldest time.Time
		for vc, h := range l.conns {
			if !h.active && (victim == nil || h.since.Before(oldest)) {
				victim, oldest = vc, h.since
			}
		}
		if victim == nil {
			return false
		}
		delete(l.conns, victim)
		_ = victim.Close() // its server goroutine sees the error and ends
	}
	l.conns[c] = &heldConn{since: time.Now()}
	return true
}

// track is the server's ConnState hook.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = u.NetConn() // a TLS connection over one of ours
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.conns[c]
	if h == nil {
		return // evicted
	}
	switch st {
	case http.StateActive:
		h.active = true
	case http.StateIdle:
		h.active, h.since = false, time.Now()
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	}
}

// count is the number of connections held.
func (l *connLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
