package harness

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// Direction names one or both directions of a Proxy's connections.
type Direction int

// Directions of a Proxy: Up is client → server (what the gateway writes),
// Down is server → client.
const (
	Up Direction = 1 << iota
	Down
	Both = Up | Down
)

// Proxy is a TCP proxy on 127.0.0.1 between a client (the gateway) and a
// server (Prosody, RabbitMQ) that can stall the link: on Stall it stops
// forwarding in one or both directions without closing anything, as a
// dead network path or a hung peer would (the sender's writes fill the
// socket buffers, then block; nothing is read, nothing is closed). Resume
// forwards again what was held; Cut closes the connections (RST) and drops
// what they held.
// Connections made after a Stall are forwarded normally: the stall hits the
// links that existed when it began.
type Proxy struct {
	Addr   string // 127.0.0.1:port to dial instead of the server
	target string
	ln     net.Listener

	mu       sync.Mutex
	cond     *sync.Cond
	links    []*link
	accepted int
	closed   bool
	taps     map[Direction]func([]byte)
	written  map[Direction]int // chunks handed to a write, per direction
	// stallAfter: a link stalls in a direction right after it passed on a
	// chunk holding this marker (StallAfter).
	stallAfter map[Direction][]byte
	stallNew   Direction // StallAll: connections accepted from now on start stalled
	down       bool      // SetDown: new connections are closed at once
	wg         sync.WaitGroup
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	stalled        Direction // guarded by Proxy.mu
	cut            bool      // guarded by Proxy.mu: Cut; nothing more is forwarded
}

// StartProxy listens on a free loopback port and forwards every connection
// to target; it is closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewProxy is StartProxy without a testing.TB; the caller must Close it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, written: map[Direction]int{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		l.stalled = p.stallNew
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.links = append(p.links, l)
		p.accepted++
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(l, Up, c, s)
		go p.pump(l, Down, s, c)
	}
}

// pump copies src to dst, holding (neither reading nor writing) while its
// direction of l is stalled.
func (p *Proxy) pump(l *link, dir Direction, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	wait := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for l.stalled&dir != 0 && !p.closed && !l.cut {
			p.cond.Wait()
		}
		return !p.closed && !l.cut
	}
	for {
		if !wait() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			tap := p.taps[dir]
			p.mu.Unlock()
			if tap != nil {
				tap(buf[:n])
			}
			if !wait() {
				return
			}
			p.mu.Lock()
			p.written[dir]++
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
			p.mu.Lock()
			if m := p.stallAfter[dir]; m != nil && bytes.Contains(buf[:n], m) {
				l.stalled |= dir
			}
			p.mu.Unlock()
		}
		if err != nil {
			// Pass the end on: a half close if the peer allows it.
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
			} else {
				dst.Close()
			}
			return
		}
	}
}

// Tap calls f with every chunk read in dir (Up or Down) before it is
// forwarded, from the forwarding goroutine: f must not block or keep b.
func (p *Proxy) Tap(dir Direction, f func(b []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taps == nil {
		p.taps = map[Direction]func([]byte){}
	}
	p.taps[dir] = f
}

// Stall stops forwarding in dir on every connection open now, without
// closing them.
func (p *Proxy) Stall(dir Direction) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.stalled |= dir
	}
}

// StallAll is Stall, and connections made from now on are stalled too
// (accepted, never forwarded), as on a dead network path; Resume ends it.
func (p *Proxy) StallAll(dir Direction) {
	p.mu.Lock()
	p.stallNew = dir
	p.mu.Unlock()
	p.Stall(dir)
}

// Resume forwards again on every connection, what was held first.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallNew = 0
	for _, l := range p.links {
		l.stalled = 0
	}
	p.cond.Broadcast()
}

// SetDown(true) takes the server away: every connection is cut and new
// ones are closed at once, as a server that is down would refuse them;
// SetDown(false) forwards new connections again.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

// Cut closes every connection open now, stalled or not, with a reset on
// both sides (SO_LINGER 0), as a peer that finally gives up would.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := p.links
	p.links = nil
	for _, l := range links {
		// Not unstalled: what a stalled link holds must never reach
		// the other side, not even in the instant before the close.
		l.cut = true
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, l := range links {
		for _, c := range []net.Conn{l.client, l.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
	}
}

// StallAfter makes every link, open or to come, stall in dir (Up or Down)
// right after it passed on a chunk that holds marker: "stall what the
// server says once it has answered the handshake". An empty marker ends
// it for links to come (Resume unstalls the others).
func (p *Proxy) StallAfter(dir Direction, marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stallAfter == nil {
		p.stallAfter = map[Direction][]byte{}
	}
	if marker == "" {
		delete(p.stallAfter, dir)
		return
	}
	p.stallAfter[dir] = []byte(marker)
}

// Written is how many chunks were passed on in dir (Up or Down): each
// chunk read is one write, unless a stall holds it and a cut drops it.
func (p *Proxy) Written(dir Direction) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written[dir]
}

// Accepted is the number of connections accepted so far.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
