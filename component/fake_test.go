package component

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppgw/stanza"
)

const (
	testDomain   = "gw.example.org"
	testSecret   = "s3cret"
	testStreamID = "1234"
)

// fakeServer is the scripted server side of a net.Pipe.
type fakeServer struct {
	t    *testing.T
	conn net.Conn
	raw  *lockedBuffer // everything the client wrote after the handshake
	dec  *xml.Decoder
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	on  bool
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// element is any element read by the fake server.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func newFakeServer(t *testing.T, conn net.Conn) *fakeServer {
	raw := &lockedBuffer{}
	return &fakeServer{t: t, conn: conn, raw: raw, dec: xml.NewDecoder(io.TeeReader(conn, raw))}
}

func (f *fakeServer) send(s string) {
	f.t.Helper()
	if _, err := io.WriteString(f.conn, s); err != nil {
		f.t.Errorf("fake server: write: %v", err)
	}
}

// next reads the next top-level element (or the end of the stream: ok false).
func (f *fakeServer) next() (element, bool) {
	for {
		tok, err := f.dec.Token()
		if err != nil {
			return element{}, false
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			var e element
			if err := f.dec.DecodeElement(&e, &tt); err != nil {
				return element{}, false
			}
			return e, true
		case xml.EndElement:
			return element{}, false
		}
	}
}

// handshake plays the server side of XEP-0114; answer is written after the
// client's <handshake/> ("" means success).
func (f *fakeServer) handshake(answer string) {
	f.t.Helper()
	tok, err := f.dec.Token()
	if err != nil {
		f.t.Errorf("fake server: reading stream header: %v", err)
		return
	}
	if se, ok := tok.(xml.StartElement); !ok || se.Name.Local != "stream" {
		f.t.Errorf("fake server: want stream header, got %#v", tok)
		return
	}
	f.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='` + testDomain + `' id='` + testStreamID + `'>`)
	e, ok := f.next()
	if !ok || e.XMLName.Local != "handshake" {
		f.t.Errorf("fake server: want handshake, got %+v", e)
		return
	}
	h := sha1.Sum([]byte(testStreamID + testSecret))
	if answer == "" && e.Inner != hex.EncodeToString(h[:]) {
		answer = `<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`
	}
	if answer == "" {
		answer = `<handshake/>`
	}
	f.raw.mu.Lock()
	f.raw.on = true
	f.raw.mu.Unlock()
	f.send(answer)
}

// recorder is an Inbound that records what it gets.
type recorder struct {
	mu   sync.Mutex
	msgs []stanza.Event
	pres []stanza.Presence
	got  chan struct{}
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 100)} }

func (r *recorder) Message(_ *Session, ev *stanza.Event) {
	r.mu.Lock()
	r.msgs = append(r.msgs, *ev)
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default: // Inbound must not block
	}
}

func (r *recorder) Presence(_ *Session, p *stanza.Presence) {
	r.mu.Lock()
	r.pres = append(r.pres, *p)
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default: // Inbound must not block
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testConfig(t *testing.T) Config {
	return Config{
		Mode:      stanza.ModeComponent,
		Server:    "pipe",
		Domain:    testDomain,
		Secret:    testSecret,
		Keepalive: 10 * time.Second,
		Version:   "1.2.3",
		Logger:    testLogger(t),
		Limits:    stanza.Limits{MaxTextBytes: 1024, MaxPayloadBytes: 1024, MaxDepth: 16},
	}
}

// pipeSession negotiates a component session with a fake server over
// net.Pipe. The session is killed at cleanup.
func pipeSession(t *testing.T, cfg Config, in Inbound) (*Session, *fakeServer) {
	t.Helper()
	c, srv := net.Pipe()
	f := newFakeServer(t, srv)
	hsDone := make(chan struct{})
	go func() {
		defer close(hsDone)
		f.handshake("")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := open(ctx, cfg, in, c)
	<-hsDone
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		s.kill(nil)
		<-s.Done()
		_ = srv.Close()
	})
	return s, f
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (f *fakeServer) String() string { return fmt.Sprintf("fakeServer(%p)", f) }
