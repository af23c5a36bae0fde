package component

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	mcomponent "mellium.im/xmpp/component"
	"mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stream"

	"xmppgw/stanza"
)

// Dial dials cfg.Server, negotiates the stream (ctx bounds only the dial and
// the negotiation, not the session's life), then starts the read loop and the
// keepalive. A refused secret or password yields an error wrapping ErrAuth, a
// domain the server does not know one wrapping ErrHostUnknown.
//
// cfg.Server may list several host:port separated by commas (the nodes of
// a cluster, or a server and its replacement): Dial tries them in order,
// each with an equal share of ctx's time left, and the first that
// negotiates a session wins (Session.Server names it). Every Dial starts
// from the first: the list is an order of preference. A server that says
// another connection holds the component (ErrConflict) ends the walk: the
// component is in use there, and going on to the next server would make a
// second active gateway. Any other failure moves on to the next server;
// when none is left the error joins every server's.
func Dial(ctx context.Context, cfg Config, in Inbound) (*Session, error) {
	if !cfg.Mode.Valid() {
		return nil, fmt.Errorf("component: unknown mode %q (want component or client)", cfg.Mode)
	}
	servers := SplitServers(cfg.Server)
	errs := make([]error, 0, len(servers))
	for i, addr := range servers {
		actx, cancel := shareOf(ctx, len(servers)-i)
		one := cfg
		one.Server = addr
		s, err := dialOne(actx, one, in)
		cancel()
		if err == nil {
			return s, nil
		}
		if len(servers) == 1 || errors.Is(err, ErrConflict) {
			return nil, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("component: none of the %d servers %s gave a session: %w", len(servers), cfg.Server, errors.Join(errs...))
}

// SplitServers splits a server list (host:port separated by commas) into
// its addresses, in order, without the spaces around each.
func SplitServers(list string) []string {
	out := strings.Split(list, ",")
	for i, a := range out {
		out[i] = strings.TrimSpace(a)
	}
	return out
}

// shareOf is ctx bounded by an equal share of its time left among n
// attempts (ctx itself when it has no deadline or n is 1).
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(d)/time.Duration(n))
}

// dialOne dials the one server cfg.Server and negotiates a session.
// mellium does not bound its reads by ctx: a server that accepts the
// connection and never speaks would hold the negotiation forever, so ctx
// bounds it by a socket deadline, cleared once the session is up.
func dialOne(ctx context.Context, cfg Config, in Inbound) (*Session, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("component: dial %s: %w", cfg.Server, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	// mellium gets a context that never ends: when its context ends it
	// pokes the socket with a past deadline and then clears every
	// deadline, which can race with (and undo) ours and leave a read on a
	// silent server blocked forever (seen under stress-ng). The socket
	// deadline above bounds the negotiation instead.
	s, err := open(context.WithoutCancel(ctx), cfg, in, conn)
	if !stop() && err == nil {
		// ctx ended as the session came up: its socket may carry a
		// deadline in the past now.
		s.kill(nil)
		<-s.Done()
		err = fmt.Errorf("component: negotiating with %s: %w", cfg.Server, ctx.Err())
	}
	if err != nil {
		_ = conn.Close()
		cerr := ctx.Err()
		if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
			// The socket deadline (= ctx's) fired a moment before
			// ctx's own timer.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

// open negotiates a session over conn (Dial without the dial, for tests).
func open(ctx context.Context, cfg Config, in Inbound, conn net.Conn) (*Session, error) {
	if in == nil {
		return nil, errors.New("component: nil Inbound")
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Mode {
	case stanza.ModeComponent:
		addr, err := jid.Parse(cfg.Domain)
		if err != nil || addr.Localpart() != "" || addr.Resourcepart() != "" {
			return nil, fmt.Errorf("component: bad component domain %q", cfg.Domain)
		}
		tc := newTailConn(conn)
		bc := newBufConn(tc)
		xs, err := mcomponent.NewSession(ctx, addr, []byte(cfg.Secret), bc)
		if err != nil {
			return nil, componentErr(cfg, err)
		}
		s := newSession(cfg, in, log, xs, addr, disco.ComponentGeneric)
		s.tail = tc
		header, end, err := bc.streamHeader()
		if err != nil && !cfg.melliumServe {
			_ = xs.Close()
			return nil, fmt.Errorf("component: handshake of %s with %s: %w", cfg.Domain, cfg.Server, err)
		}
		if !cfg.melliumServe {
			// Our own read loop takes over bc, and whatever mellium's
			// negotiation left in its buffer.
			s.sr = newStreamReader(bc, end, MaxElementBytes(cfg.Limits))
			s.md = &stanza.MessageDecoder{NS: s.ns, Limits: cfg.Limits}
			s.header = header
		}
		s.self = addr.String()
		// Barrier pings go from our domain to our domain. Checked on Prosody
		// 0.12: it routes such a ping back to us over this same stream,
		// unchanged (type get, from and to our domain), after everything we
		// wrote before it; this needs neither the server's own host name nor
		// mod_ping. handleIQ recognises it and records the confirmation
		// instead of answering. A server that answers the ping itself (result
		// or error) confirms it just as well.
		s.initPing(s.self, s.self)
		s.start()
		return s, nil
	case stanza.ModeClient:
		return openClient(ctx, cfg, in, log, conn)
	default:
		return nil, fmt.Errorf("component: unknown mode %q (want component or client)", cfg.Mode)
	}
}

func componentErr(cfg Config, err error) error {
	var se stream.Error
	if errors.As(err, &se) {
		switch se.Err {
		case stream.NotAuthorized.Err:
			return fmt.Errorf("%w: the server at %s refused the secret for component %s (%s)", ErrAuth, cfg.Server, cfg.Domain, streamText(se))
		case stream.HostUnknown.Err, stream.ImproperAddressing.Err:
			return fmt.Errorf("%w: the server at %s does not serve component %s (%s)", ErrHostUnknown, cfg.Server, cfg.Domain, se.Err)
		case stream.Conflict.Err:
			return fmt.Errorf("%w: the server at %s has another connection for %s (%s)", ErrConflict, cfg.Server, cfg.Domain, streamText(se))
		}
		return fmt.Errorf("component: handshake of %s with %s: stream error %s %s", cfg.Domain, cfg.Server, se.Err, streamText(se))
	}
	return fmt.Errorf("component: handshake of %s with %s: %w", cfg.Domain, cfg.Server, err)
}

func streamText(se stream.Error) string {
	if len(se.Text) > 0 && se.Text[0].Value != "" {
		return se.Text[0].Value
	}
	return se.Err
}

func openClient(ctx context.Context, cfg Config, in Inbound, log *slog.Logger, conn net.Conn) (*Session, error) {
	j, err := jid.Parse(cfg.JID)
	if err != nil || j.Localpart() == "" {
		return nil, fmt.Errorf("component: bad account JID %q", cfg.JID)
	}
	mechs := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1, sasl.Plain}
	var features []xmpp.StreamFeature
	var state xmpp.SessionState
	switch cfg.TLS {
	case "", "required":
		tc, err := tlsConfig(cfg, j)
		if err != nil {
			return nil, err
		}
		features = append(features, xmpp.StartTLS(tc))
	case "disabled":
		// SASL is only offered on a secure stream; claim it, the operator
		// chose a cleartext link. Channel binding needs TLS.
		state = xmpp.Secure
		mechs = []sasl.Mechanism{sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}
	default:
		return nil, fmt.Errorf("component: unknown tls mode %q (want required or disabled)", cfg.TLS)
	}
	features = append(features, xmpp.SASL("", cfg.Password, mechs...), bindResource(j))

	xs, err := xmpp.NewSession(ctx, j.Domain(), j, conn, state, xmpp.NewNegotiator(
		func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
			return xmpp.StreamConfig{Features: features}
		}))
	if err != nil {
		if isSASLFailure(err) {
			return nil, fmt.Errorf("%w: the server at %s refused the password of %s (%v)", ErrAuth, cfg.Server, j.Bare(), err)
		}
		var se stream.Error
		if errors.As(err, &se) && se.Err == stream.HostUnknown.Err {
			return nil, fmt.Errorf("%w: the server at %s does not serve %s", ErrHostUnknown, cfg.Server, j.Domain())
		}
		return nil, fmt.Errorf("component: negotiating %s with %s: %w", j.Bare(), cfg.Server, err)
	}
	s := newSession(cfg, in, log, xs, xs.LocalAddr(), disco.ClientBot)
	s.self = s.addr.String()
	s.initPing(s.self, s.addr.Domain().String())
	s.start()
	// Without initial presence the server does not route messages to the bare
	// JID to us. The roster get goes first (RFC 6121 §2.2), in the same write.
	if err := s.Write(append(s.rosterGet(), "<presence/>"...)); err != nil {
		s.kill(nil)
		<-s.done
		return nil, fmt.Errorf("component: initial presence: %w", err)
	}
	return s, nil
}

// bindResource is xmpp.BindResource, except that it asks for j's resource
// when there is one: mellium v0.23.0 sends an empty <resource/> whatever the
// session's address (bindPayload.TokenReader writes the JID, not the
// resource), so the configured resource would be lost.
func bindResource(j jid.JID) xmpp.StreamFeature {
	f := xmpp.BindResource()
	res := j.Resourcepart()
	if res == "" {
		return f
	}
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, _ interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		r := s.TokenReader()
		defer r.Close()
		w := s.TokenWriter()
		defer w.Close()
		var esc strings.Builder
		_ = xml.EscapeText(&esc, []byte(res))
		const id = "xmppgw-bind"
		if _, err := io.WriteString(s.Conn(), `<iq type='set' id='`+id+`'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>`+esc.String()+`</resource></bind></iq>`); err != nil {
			return 0, nil, err
		}
		d := xml.NewTokenDecoder(r)
		var resp struct {
			XMLName xml.Name
			ID      string `xml:"id,attr"`
			Type    string `xml:"type,attr"`
			JID     string `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
			Error   *struct {
				Inner string `xml:",innerxml"`
			} `xml:"error"`
		}
		if err := d.Decode(&resp); err != nil {
			return 0, nil, fmt.Errorf("resource binding: %w", err)
		}
		if resp.XMLName.Local != "iq" || resp.ID != id || resp.Type != "result" {
			return 0, nil, fmt.Errorf("resource binding refused: %s %s", resp.Type, resp.Error)
		}
		bound, err := jid.Parse(resp.JID)
		if err != nil {
			return 0, nil, fmt.Errorf("resource binding: bad jid %q: %w", resp.JID, err)
		}
		s.UpdateAddr(bound)
		return xmpp.Ready, nil, nil
	}
	return f
}

// isSASLFailure reports whether err is a SASL <failure/> from the server
// (mellium's type is internal) or the lack of a common mechanism.
func isSASLFailure(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if t := reflect.TypeOf(e); t != nil && strings.HasSuffix(t.PkgPath(), "/internal/saslerr") {
			return true
		}
		if strings.Contains(e.Error(), "no matching SASL mechanisms") {
			return true
		}
	}
	return false
}

func tlsConfig(cfg Config, j jid.JID) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("component: tls_ca: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("component: tls_ca %s: no PEM certificate found", cfg.TLSCA)
		}
	}
	name := cfg.TLSServerName
	if name == "" {
		name = j.Domainpart()
	}
	return &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

func newSession(cfg Config, in Inbound, log *slog.Logger, xs *xmpp.Session, addr jid.JID, ident info.Identity) *Session {
	var nb, eb [8]byte
	_, _ = rand.Read(nb[:])
	_, _ = rand.Read(eb[:])
	ns := xs.In().XMLNS
	s := &Session{
		cfg:      cfg,
		in:       in,
		log:      log,
		xs:       xs,
		conn:     xs.Conn(),
		addr:     addr,
		ns:       ns,
		idPrefix: "xb-" + hex.EncodeToString(nb[:]) + "-",
		evPrefix: "xg-" + hex.EncodeToString(eb[:]) + "-",
		t0:       time.Now(),
		notify:   make(chan struct{}, 1),
		dead:     make(chan struct{}),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
	}
	s.bareSelf = xs.LocalAddr().Bare().String()
	ident.Name = "xmppgw"
	s.mux = newMux(ns, ident, cfg.Version)
	s.lastRead.Store(s.now())
	return s
}

func (s *Session) start() {
	s.wg.Add(1)
	go s.keepalive()
	go s.serve()
}

// Server is the host:port this session is connected to: the one of
// Config.Server's list that answered.
func (s *Session) Server() string { return s.cfg.Server }
