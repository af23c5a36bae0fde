package harness

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Buffer sizes of a Client: a test may let this many stanzas arrive before
// it reads them without stalling the stream.
const (
	MessageBuffer  = 100000
	PresenceBuffer = 10000
)

const (
	nsClient = "jabber:client"
	nsJSON   = "urn:xmpp:json:0"
	nsDelay  = "urn:xmpp:delay"
	nsStanza = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsXML    = "http://www.w3.org/XML/1998/namespace"
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

func (c *Client) serve() {
	err := c.s.Serve(xmpp.HandlerFunc(c.handle))
	select {
	case <-c.closing:
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
			err = nil
		}
	default:
		if err == nil {
			err = io.EOF // the server closed the stream
		}
	}
	c.err = err
	close(c.msgs)
	close(c.pres)
	close(c.done)
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

// Send sends a chat message with body to the JID to.
func (c *Client) Send(ctx context.Context, to, body string) error {
	id := c.nextID()
	return c.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='%s' to='%s'><body>%s</body></message>`, id, escape(to), escape(body)))
}

// SendRaw writes raw bytes to the stream between two stanzas, unchecked:
// it may be any (even malformed) XML.
func (c *Client) SendRaw(ctx context.Context, raw string) error {
	w := c.s.TokenWriter() // holds the output lock
	defer w.Close()
	if err := w.Flush(); err != nil {
		return err
	}
	conn := c.s.Conn()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(d)
		defer conn.SetWriteDeadline(time.Time{})
	}
	_, err := io.WriteString(conn, raw)
	return err
}

// SendIQ writes the raw <iq/> iq and returns the raw reply (result or
// error: check IQType) when it arrives. An iq without an id attribute gets
// one. Never call it from code that runs inside the client's reading
// goroutine; tests call it from their own.
func (c *Client) SendIQ(ctx context.Context, iq string) (string, error) {
	id, raw, err := ensureID(iq, c.nextID)
	if err != nil {
		return "", err
	}
	ch := make(chan string, 1)
	c.mu.Lock()
	if _, dup := c.waiters[id]; dup {
		c.mu.Unlock()
		return "", fmt.Errorf("harness: iq id %q already waiting", id)
	}
	c.waiters[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
	}()
	if err := c.SendRaw(ctx, raw); err != nil {
		return "", err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-c.done:
		return "", fmt.Errorf("harness: stream ended waiting for iq %q: %v", id, c.err)
	case <-ctx.Done():
		return "", fmt.Errorf("harness: iq %q: %w", id, ctx.Err())
	}
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

func (c *Client) nextID() string {
	return fmt.Sprintf("h%d", c.ids.Add(1))
}

func (c *Client) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := readStanza(r, start)
	if err != nil {
		return err
	}
	switch start.Name.Local {
	case "message":
		m := Msg{ID: st.id, From: st.from, To: st.to, Type: st.typ, Body: st.body, Subject: st.subject,
			Thread: st.thread, JSON: st.json, HasJSON: st.hasJSON, Delayed: st.delayed, Error: st.cond, Raw: st.raw}
		select {
		case c.msgs <- m:
		case <-c.closing:
		}
	case "presence":
		p := Presence{ID: st.id, From: st.from, To: st.to, Type: st.typ, Show: st.show, Status: st.status, Error: st.cond, Raw: st.raw}
		select {
		case c.pres <- p:
		case <-c.closing:
		}
	case "iq":
		if st.typ == "result" || st.typ == "error" {
			c.mu.Lock()
			ch := c.waiters[st.id]
			c.mu.Unlock()
			if ch != nil {
				select {
				case ch <- st.raw:
				default:
				}
			}
		}
		// get/set: mellium answers service-unavailable.
	}
	return nil
}

// IQType returns the type attribute of a raw reply from SendIQ.
func IQType(raw string) string {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if s, ok := tok.(xml.StartElement); ok {
			for _, a := range s.Attr {
				if a.Name.Local == "type" && a.Name.Space == "" {
					return a.Value
				}
			}
			return ""
		}
	}
}

// ensureID returns the id of the root element of raw, adding one made by
// next if it has none.
func ensureID(raw string, next func() string) (id, out string, err error) {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return "", "", fmt.Errorf("harness: iq: %w", err)
		}
		s, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range s.Attr {
			if a.Name.Local == "id" && a.Name.Space == "" {
				return a.Value, raw, nil
			}
		}
		i := strings.Index(raw, "<"+s.Name.Local)
		if s.Name.Space != "" {
			i = strings.Index(raw, "<"+s.Name.Space+":"+s.Name.Local)
		}
		if i < 0 {
			return "", "", errors.New("harness: iq: cannot find the root element")
		}
		id = next()
		j := i + 1 + strings.IndexAny(raw[i+1:], " \t\r\n/>")
		return id, raw[:j] + " id='" + id + "'" + raw[j:], nil
	}
}

// stanza is what readStanza extracts.
type stanzaInfo struct {
	id, from, to, typ                   string
	body, subject, thread, show, status string
	json                                string
	hasJSON, delayed                    bool
	cond                                string
	raw                                 string
}

// readStanza reads the rest of the stanza that start opens, re-serialises
// it and picks out the fields tests look at.
func readStanza(r xml.TokenReader, start *xml.StartElement) (stanzaInfo, error) {
	var st stanzaInfo
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			st.id = a.Value
		case "from":
			st.from = a.Value
		case "to":
			st.to = a.Value
		case "type":
			st.typ = a.Value
		}
	}
	var b strings.Builder
	nss := []string{nsClient}
	writeStart(&b, *start, nsClient)
	nss = append(nss, start.Name.Space)

	// child is the direct child of the stanza being read, text collects its
	// character data.
	var (
		child   xml.Name
		inError bool
		text    strings.Builder
	)
	depth := 1
	for depth > 0 {
		tok, err := r.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			writeStart(&b, t, nss[len(nss)-1])
			nss = append(nss, t.Name.Space)
			depth++
			switch depth {
			case 2:
				child = t.Name
				text.Reset()
				switch {
				case t.Name.Local == "json" && t.Name.Space == nsJSON:
					st.hasJSON = true
				case t.Name.Local == "delay" && t.Name.Space == nsDelay:
					st.delayed = true
				case t.Name.Local == "error":
					inError = true
				}
			case 3:
				if inError && t.Name.Space == nsStanza && t.Name.Local != "text" {
					st.cond = t.Name.Local
				}
			}
		case xml.EndElement:
			depth--
			nss = nss[:len(nss)-1]
			b.WriteString("</")
			b.WriteString(t.Name.Local)
			b.WriteByte('>')
			if depth == 1 {
				s := text.String()
				switch {
				case child.Space == nsJSON && child.Local == "json":
					st.json = s
				case child.Space != start.Name.Space:
				case child.Local == "body":
					st.body = s
				case child.Local == "subject":
					st.subject = s
				case child.Local == "thread":
					st.thread = s
				case child.Local == "show":
					st.show = s
				case child.Local == "status":
					st.status = s
				case child.Local == "error":
					inError = false
				}
			}
		case xml.CharData:
			_ = xml.EscapeText(&b, t)
			if depth == 2 {
				text.Write(t)
			}
		}
	}
	if depth > 0 {
		// InnerElement may stop before the end element: close the root.
		b.WriteString("</")
		b.WriteString(start.Name.Local)
		b.WriteByte('>')
	}
	st.raw = b.String()
	return st, nil
}

func writeStart(b *strings.Builder, s xml.StartElement, parentNS string) {
	b.WriteByte('<')
	b.WriteString(s.Name.Local)
	if s.Name.Space != parentNS {
		b.WriteString(` xmlns="`)
		_ = xml.EscapeText(b, []byte(s.Name.Space))
		b.WriteByte('"')
	}
	for _, a := range s.Attr {
		switch a.Name.Space {
		case "":
			if a.Name.Local == "xmlns" {
				continue
			}
		case nsXML, "xml":
			b.WriteString(" xml:")
			b.WriteString(a.Name.Local)
			writeAttrValue(b, a.Value)
			continue
		case "xmlns":
			b.WriteString(" xmlns:")
			b.WriteString(a.Name.Local)
			writeAttrValue(b, a.Value)
			continue
		}
		b.WriteByte(' ')
		b.WriteString(a.Name.Local)
		writeAttrValue(b, a.Value)
	}
	b.WriteByte('>')
}

func writeAttrValue(b *strings.Builder, v string) {
	b.WriteString(`="`)
	_ = xml.EscapeText(b, []byte(v))
	b.WriteByte('"')
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

// escape escapes s for XML text or an attribute value in either quotes.
func escape(s string) string { return escaper.Replace(s) }
