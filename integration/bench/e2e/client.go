package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"xmppgw/integration/harness"
)

// rawClient is a real XMPP client: mellium negotiates the c2s stream
// (SASL PLAIN, resource binding); after that the client reads and writes
// raw bytes on the connection, so that the clients cost as little CPU as
// possible on a box they share with Prosody and the gateway. It scans what
// it receives for <message/> start tags and hands their id and type to the
// current sink.
type rawClient struct {
	JID  jid.JID
	conn net.Conn
	sink atomic.Pointer[sinkHolder]
	done chan struct{}
	err  error
}

type sinkHolder struct{ s sink }

// sink gets the messages a client receives, one read at a time.
type sink interface {
	// messages is called with the id and type attributes of each message
	// start tag found in one read from the connection.
	messages(ids [][]byte, types [][]byte)
}

func dialRaw(ctx context.Context, addr, account, pass string) (*rawClient, error) {
	origin, err := jid.Parse(account)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := harness.DialSession(ctx, addr, origin, pass)
	if err != nil {
		return nil, err
	}
	conn := s.Conn()
	c := &rawClient{JID: s.LocalAddr(), conn: conn, done: make(chan struct{})}
	// Initial presence (else the server does not route messages for the
	// bare JID to us), then a ping to know the server has handled it.
	if _, err := io.WriteString(conn, "<presence/><iq type='get' id='ready1' to='"+origin.Domain().String()+"'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		conn.Close()
		return nil, err
	}
	ready := make(chan struct{})
	go c.read(ready)
	select {
	case <-ready:
	case <-c.done:
		return nil, fmt.Errorf("client %s: stream ended: %v", account, c.err)
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("client %s: no answer to the ping after presence", account)
	}
	return c, nil
}

func (c *rawClient) setSink(s sink) {
	if s == nil {
		c.sink.Store(nil)
		return
	}
	c.sink.Store(&sinkHolder{s})
}

func (c *rawClient) Close() error {
	_, _ = io.WriteString(c.conn, "</stream:stream>")
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	err := c.conn.Close()
	<-c.done
	return err
}

var (
	tagMessage = []byte("<message")
	attrID     = []byte(" id=")
	attrType   = []byte(" type=")
	readyID    = []byte("'ready1'")
	readyID2   = []byte(`"ready1"`)
)

// read scans the stream for message start tags until the connection ends.
func (c *rawClient) read(ready chan struct{}) {
	defer close(c.done)
	buf := make([]byte, 256<<10)
	n := 0 // bytes of buf in use (an incomplete tag carried over)
	var ids, types [][]byte
	for {
		m, err := c.conn.Read(buf[n:])
		if m > 0 {
			data := buf[:n+m]
			if ready != nil && (bytes.Contains(data, readyID) || bytes.Contains(data, readyID2)) {
				close(ready)
				ready = nil
			}
			ids, types = ids[:0], types[:0]
			keep := len(data) // start of the carried-over tail
			pos := 0
			for {
				i := bytes.Index(data[pos:], tagMessage)
				if i < 0 {
					// A tag name cut at the end of the read.
					keep = max(pos, len(data)-len(tagMessage)+1)
					break
				}
				start := pos + i
				end := bytes.IndexByte(data[start:], '>')
				if end < 0 {
					keep = start
					break
				}
				tag := data[start : start+end]
				ids = append(ids, attr(tag, attrID))
				types = append(types, attr(tag, attrType))
				pos = start + end
			}
			if h := c.sink.Load(); h != nil && len(ids) > 0 {
				h.s.messages(ids, types)
			}
			n = copy(buf, data[keep:])
			if n == len(buf) {
				n = 0 // a huge tag: cannot happen with our items
			}
		}
		if err != nil {
			c.err = err
			return
		}
	}
}

// attr returns the value of the attribute whose " name=" prefix is given,
// within the start tag tag, or nil.
func attr(tag, prefix []byte) []byte {
	i := bytes.Index(tag, prefix)
	if i < 0 || i+len(prefix) >= len(tag) {
		return nil
	}
	v := tag[i+len(prefix):]
	q := v[0]
	v = v[1:]
	j := bytes.IndexByte(v, q)
	if j < 0 {
		return nil
	}
	return v[:j]
}

// write writes raw bytes to the stream.
func (c *rawClient) write(p []byte) error {
	_, err := c.conn.Write(p)
	return err
}
