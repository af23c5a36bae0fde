// Package component owns one XMPP stream of the gateway: an XEP-0114
// component connection or a client (c2s) account. It dials and negotiates,
// writes pre-encoded stanzas in single raw writes, confirms them with ping
// barriers, keeps the stream alive and answers the IQs every entity must
// answer, and hands incoming messages and presences to the gateway.
//
// There is no reconnect loop here: a Session is one stream. When it dies Done
// is closed and Err says why; the gateway dials a new one.
package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stream"

	"xmppgw/stanza"
)

// Errors reported by Dial, the writers and Err.
var (
	ErrAuth        = errors.New("component: authentication failed")
	ErrHostUnknown = errors.New("component: the server does not serve this domain")
	// ErrConflict: another connection holds the component (a second
	// gateway, with the server's default conflict policy).
	ErrConflict = errors.New("component: the component is already connected")
	ErrTimeout  = errors.New("component: keepalive timeout")
	ErrClosed   = errors.New("component: session closed")
)

// DefaultKeepalive is used when Config.Keepalive is zero.
const DefaultKeepalive = 30 * time.Second

// Config describes one stream.
type Config struct {
	Mode          stanza.Mode   // stanza.ModeComponent | stanza.ModeClient
	Server        string        // host:port dialled
	Domain        string        // component mode: the component's domain
	Secret        string        // component mode: XEP-0114 shared secret
	JID           string        // client mode: account JID, resource optional
	Password      string        // client mode
	TLS           string        // client mode: "required" | "disabled" (STARTTLS)
	TLSCA         string        // client mode: PEM file of extra CAs
	TLSServerName string        // client mode: default the JID's domain
	Keepalive     time.Duration // ping interval when idle; a barrier unanswered for this long kills the session (ErrTimeout)
	Version       string        // XEP-0092 version answered
	Logger        *slog.Logger
	Limits        stanza.Limits
	// OnBarrier, if set, is called on the read goroutine with the round trip
	// of each answered barrier. It must be cheap and must not block.
	OnBarrier func(rtt time.Duration)

	// melliumServe (tests and benchmarks only) reads a component stream
	// with mellium's Serve, as client mode does, instead of our own read
	// loop: the reference the read loop is compared with.
	melliumServe bool
}

// Inbound receives what arrives on the stream. Both methods are called on the
// session's read goroutine, one at a time, and must not block.
type Inbound interface {
	// Message gets message events (Kind "message") and bounces of our own
	// stanzas (Kind "error"). ReceivedAt and ID are always set. *ev is the
	// callee's only for the call (the session reuses it); its strings and
	// payload are the callee's to keep.
	Message(s *Session, ev *stanza.Event)
	// Presence gets every presence stanza.
	Presence(s *Session, p *stanza.Presence)
}

// Session is one negotiated XMPP stream. Its methods are safe for concurrent
// use.
type Session struct {
	cfg  Config
	in   Inbound
	log  *slog.Logger
	xs   *xmpp.Session
	conn net.Conn
	tail *tailConn // component mode: the last bytes read, for StreamErrorCondition
	addr jid.JID
	self string // address our barrier pings come from
	// pingTo is the address our barrier pings go to, the only entity
	// whose answers confirm them: our own domain (component mode), the
	// server's domain (client mode).
	pingTo string
	ns     string // stanza namespace of the stream
	mux    *mux.ServeMux
	// evPrefix starts the ids generated for inbound stanzas that have
	// none. Those ids are echoed to senders, so they share nothing with
	// the barrier ids (idPrefix), which nobody but the server may learn.
	evPrefix string
	t0       time.Time // base of the monotonic clock readings below

	// Writer state, guarded by mellium's output lock (held via TokenWriter).
	seq      uint64
	wbuf     []byte
	pingHead []byte // barrier ping up to the sequence number in its id
	pingTail []byte // and after it

	idPrefix   string        // "xb-<secret nonce>-": ids of our barrier pings
	sent       atomic.Uint64 // highest barrier seq written
	confirmed  atomic.Uint64
	notify     chan struct{}
	writeStart atomic.Int64 // s.now() when an unfinished raw write began, 0 if none
	lastRead   atomic.Int64 // s.now() of the last element read

	bmu     sync.Mutex
	pending pendingQueue // send times of unconfirmed barriers, guarded by bmu

	// Read goroutine only.
	ebuf     []byte
	inSeq    uint64
	ev       stanza.Event // the event handed to Inbound.Message, reused
	bareSelf string       // our bare address: a from equal to it is blanked, as mellium's Serve does
	// Component mode's own read loop (read_loop.go); nil sr: mellium's Serve.
	sr     *streamReader
	md     *stanza.MessageDecoder
	header []byte       // the server's stream header (its namespace declarations), for dec
	dec    *xml.Decoder // reads the elements that are not fast (tokenDecoder)
	feed   feed         // what dec reads

	killOnce  sync.Once
	errMu     sync.Mutex
	err       error
	dead      chan struct{} // closed by kill
	done      chan struct{} // closed when every goroutine of the session ended
	wg        sync.WaitGroup
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{} // closed when the </stream:stream> writer returned
	pingBusy  atomic.Int64  // s.now() when a keepalive ping write started, 0 if none
}

// Addr is the session's own address: the component's domain, or the bound
// full JID of the account.
func (s *Session) Addr() jid.JID { return s.addr }

// Confirmed is the highest barrier sequence number the server has answered.
// Everything written before that barrier has been processed by the server.
func (s *Session) Confirmed() uint64 { return s.confirmed.Load() }

// Notify is signalled (capacity 1) whenever Confirmed grows.
func (s *Session) Notify() <-chan struct{} { return s.notify }

// Done is closed when the stream is dead and all of the session's goroutines
// have ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended; nil while it runs and after a clean Close.
func (s *Session) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Session) now() int64 { return int64(time.Since(s.t0)) + 1 }

// kill ends the session: the first cause wins, the connection is closed so
// that every blocked read and write returns.
func (s *Session) kill(err error) {
	s.killOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		close(s.dead)
		if err != nil {
			s.log.Warn("xmpp session ended", "err", err)
		}
		_ = s.conn.Close()
	})
}

// Close ends the stream gracefully: it sends </stream:stream>, waits (bounded
// by ctx) for the server to close its side, and closes the connection. It is
// idempotent and safe to call concurrently with writers.
func (s *Session) Close(ctx context.Context) error {
	select {
	case <-s.dead:
		<-s.done
		return nil
	default:
	}
	s.closing.Store(true)
	s.closeOnce.Do(func() {
		go func() {
			defer close(s.closed)
			// Takes mellium's output lock: a writer blocked in the middle of a
			// write is released by kill (ctx expiry) or the keepalive watchdog.
			_ = s.xs.Close()
		}()
	})
	var err error
	select {
	case <-s.done:
	case <-ctx.Done():
		err = fmt.Errorf("component: close: server did not end its stream: %w", ctx.Err())
		s.kill(nil)
		<-s.done
	}
	<-s.closed
	return err
}

// serve runs the read loop until the stream ends, then tears down. A
// component session reads with its own loop (read_loop.go); a client
// session, whose stream runs over TLS through mellium's reader, keeps
// mellium's Serve (so do tests that compare the two, melliumServe).
func (s *Session) serve() {
	var err error
	if s.sr != nil {
		err = s.serveOwn()
	} else {
		err = s.xs.Serve(xmpp.HandlerFunc(s.handle))
	}
	switch {
	case s.closing.Load():
		s.kill(nil)
	case err == nil:
		s.kill(fmt.Errorf("%w: the server ended the stream", ErrClosed))
	default:
		s.kill(fmt.Errorf("component: stream: %w", err))
	}
	s.wg.Wait()
	close(s.done)
}

// pendingQueue is a growable ring of (seq, sent time) of unconfirmed barriers,
// in increasing seq order.
type pendingQueue struct {
	buf  []pendingBarrier
	head int
	n    int
}

type pendingBarrier struct {
	seq uint64
	at  int64
}

func (q *pendingQueue) push(seq uint64, at int64) {
	if q.n == len(q.buf) {
		nb := make([]pendingBarrier, max(16, 2*len(q.buf)))
		for i := range q.n {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = pendingBarrier{seq, at}
	q.n++
}

// popThrough removes every barrier up to seq and returns seq's send time, 0
// if it was not pending.
func (q *pendingQueue) popThrough(seq uint64) (at int64) {
	for q.n > 0 {
		b := q.buf[q.head]
		if b.seq > seq {
			break
		}
		if b.seq == seq {
			at = b.at
		}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	return at
}

func (q *pendingQueue) oldest() (at int64, ok bool) {
	if q.n == 0 {
		return 0, false
	}
	return q.buf[q.head].at, true
}

// StreamErrorCondition returns the condition of the stream error the server
// ended the session with ("" if none, or while the session runs): the error
// mellium reported, or else the last stream error in the bytes read (which
// mellium loses when echoing it back fails, and which a failed write of ours
// hides).
func (s *Session) StreamErrorCondition() string {
	if c := StreamErrorCondition(s.Err()); c != "" {
		return c
	}
	select {
	case <-s.done:
	default:
		return ""
	}
	if s.tail != nil {
		return s.tail.streamError()
	}
	return ""
}

// StreamErrorCondition returns the condition of the stream error that ended a
// session (err from Session.Err), such as "not-well-formed" or
// "policy-violation", or "" if the stream did not end with a stream error.
func StreamErrorCondition(err error) string {
	var se stream.Error
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}
