package component

import (
	"bytes"
	"context"
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
