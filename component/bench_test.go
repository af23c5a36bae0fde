package component

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"xmppgw/stanza"
)

// benchSession is a component session over loopback TCP to a fake server that
// drains everything after the handshake (barriers stay unanswered; keepalive
// is long enough not to matter).
func benchSession(b *testing.B) *Session {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Minimal XEP-0114 server: any handshake is accepted.
		buf := make([]byte, 4096)
		var got []byte
		headerSent := false
		for !bytes.Contains(got, []byte("</handshake>")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
			if !headerSent && bytes.Contains(got, []byte("<stream:stream")) {
				headerSent = true
				_, _ = io.WriteString(c, `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='`+testDomain+`' id='`+testStreamID+`'>`)
			}
		}
		_, _ = io.WriteString(c, `<handshake/>`)
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Mode: stanza.ModeComponent, Domain: testDomain, Secret: testSecret, Keepalive: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := open(ctx, cfg, newRecorder(), c)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.kill(nil)
		<-s.Done()
		<-srvDone
	})
	return s
}

func batch(n int) []byte {
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `<message to='user%d@example.org' from='notices@gw.example.org' id='0123456789abcdef%04d' type='chat'><body>hello, this is message %d of the batch</body></message>`, i, i, i)
	}
	return []byte(sb.String())
}

// BenchmarkWriteWithBarrier writes batches of stanzas plus a barrier ping per
// call; ns/op is per call, stanzas/s is reported for the batch size.
func BenchmarkWriteWithBarrier(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := benchSession(b)
			p := batch(n)
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.WriteWithBarrier(p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "stanzas/s")
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	s := benchSession(b)
	p := batch(1)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Write(p); err != nil {
			b.Fatal(err)
		}
	}
}

// benchInbound counts the message events and presences it gets.
type benchInbound struct{ n int }

func (in *benchInbound) Message(_ *Session, ev *stanza.Event) {
	if ev.Kind == "message" {
		in.n++
	}
}

func (in *benchInbound) Presence(*Session, *stanza.Presence) { in.n++ }

// memConn is a server in memory: its reads are the server's side of the
// negotiation, then (once go is closed) n copies of msg in reads of up to
// 64 KiB, as TCP would deliver a busy stream, then the stream's end tag.
// Writes are discarded.
type memConn struct {
	net.Conn // nil: only the methods below are used
	pre      []byte
	block    []byte // copies of msg
	off      int    // in block
	left     int    // bytes of messages left
	post     []byte
	gate     chan struct{}
}

func newMemConn(msg string, n int) *memConn {
	return &memConn{
		pre:   []byte(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='` + testDomain + `' id='` + testStreamID + `'><handshake/>`),
		block: []byte(strings.Repeat(msg, max(1, (64<<10)/len(msg)))),
		left:  n * len(msg),
		post:  []byte(`</stream:stream>`),
		gate:  make(chan struct{}),
	}
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	<-c.gate
	if c.left > 0 {
		n := copy(p[:min(len(p), c.left, 64<<10)], c.block[c.off:])
		c.off = (c.off + n) % len(c.block)
		c.left -= n
		return n, nil
	}
	if len(c.post) > 0 {
		n := copy(p, c.post)
		c.post = c.post[n:]
		return n, nil
	}
	return 0, io.EOF
}

func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkReadMessages feeds the same stream of typical inbound messages
// (the end-to-end bench's, as Prosody routes them: ~100-byte body) through
// mellium's Serve and through our read loop to an Inbound that counts
// them; ns/op and allocs/op are per message.
func BenchmarkReadMessages(b *testing.B) {
	benchRead(b, `<message type='chat' to='notices@gw.example.org' id='i123456' from='alice@example.org/bench' xml:lang='en'><body>Hello, this is customer message number 123456, asking about the order I placed on Monday morning.</body></message>`, true)
}

// BenchmarkReadOthers is BenchmarkReadMessages for what our loop replays
// through encoding/xml: a presence to the Inbound, a ping answered.
func BenchmarkReadOthers(b *testing.B) {
	b.Run("presence", func(b *testing.B) {
		benchRead(b, `<presence from='alice@example.org/bench' to='notices@gw.example.org' xml:lang='en'><show>away</show><status>out for lunch</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='abcdefghijklmnopqrstuvwxyz0='/></presence>`, true)
	})
	b.Run("ping", func(b *testing.B) {
		benchRead(b, `<iq type='get' id='p123456' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`, false)
	})
}

// benchRead reads b.N copies of msg through both loops; count: each
// reaches the Inbound.
func benchRead(b *testing.B, msg string, count bool) {
	for _, loop := range []struct {
		name    string
		mellium bool
	}{{"mellium", true}, {"fast", false}} {
		b.Run(loop.name, func(b *testing.B) {
			in := &benchInbound{}
			c := newMemConn(msg, b.N)
			cfg := Config{Mode: stanza.ModeComponent, Domain: testDomain, Secret: testSecret, Keepalive: time.Hour, melliumServe: loop.mellium}
			s, err := open(context.Background(), cfg, in, c)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			close(c.gate)
			<-s.Done()
			b.StopTimer()
			if count && in.n != b.N || !errors.Is(s.Err(), ErrClosed) {
				b.Fatalf("%d of %d (%v)", in.n, b.N, s.Err())
			}
		})
	}
}
