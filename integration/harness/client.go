package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Buffer sizes of a Client: a test may let this many stanzas arrive before
// it reads them without stalling the stream.
const (
	MessageBuffer  = 100000
	PresenceBuffer = 10000
)

// Msg is a <message/> a Client received.
type Msg struct {
	ID, From, To, Type string
	Body, Subject      string
	Thread             string
	// JSON is the text of the XEP-0335 <json xmlns='urn:xmpp:json:0'/>
	// element ("" if none); HasJSON tells an empty one from none.
	JSON    string
	HasJSON bool
	// Delayed is set when the message carries a XEP-0203 delay (offline
	// storage adds one).
	Delayed bool
	// Error is the defined condition of a type='error' message.
	Error string
	// Raw is the stanza re-serialised (namespaces declared where they change,
	// attributes in double quotes).
	Raw string
}

// Presence is a <presence/> a Client received (including its own initial
// presence, which the server reflects).
type Presence struct {
	ID, From, To, Type string
	Show, Status       string
	Error              string
	Raw                string
}

// Client is a real XMPP client (c2s, no TLS) logged in to a test Prosody.
// It collects what it receives; it is safe for concurrent use.
type Client struct {
	// JID is the full JID the server bound.
	JID jid.JID

	s        *xmpp.Session
	msgs     chan Msg
	pres     chan Presence
	closing  chan struct{}
	done     chan struct{}
	err      error // of Serve, set before done is closed
	closeOne sync.Once
	ids      atomic.Uint64

	mu      sync.Mutex
	waiters map[string]chan string
}

// DialClient logs user in to p with SASL PLAIN (SCRAM-SHA-1 if the server
// does not offer PLAIN), binds a resource chosen by the server, sends initial
// presence, waits until the server has processed it (a ping round trip), and
// starts collecting stanzas. The client is closed when the test ends.
func DialClient(t testing.TB, p *Prosody, user, pass string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), p.C2SAddr, user+"@"+p.Domain, pass)
	if err != nil {
		t.Fatalf("harness: client %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// DialSession dials addr and negotiates a c2s session for account with
// PLAIN or SCRAM-SHA-1 and resource binding; ctx bounds both. mellium
// offers SASL only on secure streams: declaring the stream Secure lets it
// authenticate over the plaintext test connection (the test servers allow
// unencrypted PLAIN).
func DialSession(ctx context.Context, addr string, account jid.JID, pass string) (*xmpp.Session, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	neg := xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.SASL("", pass, sasl.Plain, sasl.ScramSha1),
			xmpp.BindResource(),
		}}
	})
	s, err := xmpp.NewSession(ctx, account.Domain(), account, conn, xmpp.Secure, neg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client %s: negotiate: %w", account, err)
	}
	return s, nil
}

// Dial is DialClient without a testing.TB: addr is the server's c2s
// address, account is user@domain. The caller must Close the client.
func Dial(ctx context.Context, addr, account, pass string) (*Client, error) {
	origin, err := jid.Parse(account)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := DialSession(ctx, addr, origin, pass)
	if err != nil {
		return nil, err
	}
	c := &Client{
		JID:     s.LocalAddr(),
		s:       s,
		msgs:    make(chan Msg, MessageBuffer),
		pres:    make(chan Presence, PresenceBuffer),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		waiters: make(map[string]chan string),
	}
	go c.serve()
	if err := c.SendRaw(ctx, "<presence/>"); err != nil {
		c.Close()
		return nil, err
	}
	reply, err := c.SendIQ(ctx, fmt.Sprintf(`<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, escape(origin.Domain().String())))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ping after presence: %w", err)
	}
	if IQType(reply) != "result" {
		c.Close()
		return nil, fmt.Errorf("ping after presence: %s", reply)
	}
	return c, nil
}

// Messages delivers the messages received, in order. It is closed when the
// stream ends.
func (c *Client) Messages() <-chan Msg { return c.msgs }

// Presences delivers the presences received, in order. It is closed when
// the stream ends.
func (c *Client) Presences() <-chan Presence { return c.pres }

// Done is closed when the stream has ended (Close, or the server went away).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the stream ended (nil after Close); valid after Done.
func (c *Client) Err() error {
	<-c.done
	return c.err
}

// Close ends the stream, closes the connection and waits for the reading
// goroutine. It may be called more than once.
func (c *Client) Close() error {
	c.closeOne.Do(func() {
		close(c.closing)
		// End our stream, give the server a moment to end its own, then
		// close the connection. (Session.SetCloseDeadline races with Serve.)
		_ = c.s.Close()
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
		_ = c.s.Conn().Close()
	})
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		return errors.New("harness: client did not stop")
	}
	return c.err
}
