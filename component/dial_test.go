package component

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// listServer is one server of a list in TestDialOrder: it records when it
// was connected to and plays the component handshake with a given answer.
type listServer struct {
	name string
	addr string
}

// dialLog records the order in which servers were connected to.
type dialLog struct {
	mu    sync.Mutex
	order []string
}

func (l *dialLog) add(name string) {
	l.mu.Lock()
	l.order = append(l.order, name)
	l.mu.Unlock()
}

func (l *dialLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.order, " ")
}

// startListServer starts a server on loopback: kind "good" (accepts the
// handshake), "conflict", "auth" (refuses the secret), "silent" (accepts
// the connection and never speaks) or "dead" (nothing listens).
func startListServer(t *testing.T, log *dialLog, name, kind string) listServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := listServer{name: name, addr: ln.Addr().String()}
	if kind == "dead" {
		ln.Close()
		return s
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			log.add(name)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if kind == "silent" {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := newFakeServer(t, c)
				switch kind {
				case "conflict":
					f.handshake(`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
				case "auth":
					f.handshake(`<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`)
				default:
					f.handshake("")
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// Dial walks xmpp.server's list in order: the first server that gives a
// session wins; a dead, silent or refusing server is passed over; a
// conflict ends the walk (the component is held there); every Dial starts
// again from the first.
func TestDialOrder(t *testing.T) {
	for i, tc := range []struct {
		kinds []string // the servers, in list order
		want  string   // the server the session is on ("" none)
		err   error    // when want is ""
		order string   // the servers connected to, in order
	}{
		0: {kinds: []string{"good"}, want: "s0", order: "s0"},
		1: {kinds: []string{"good", "good"}, want: "s0", order: "s0"},
		2: {kinds: []string{"dead", "good"}, want: "s1", order: "s1"},
		3: {kinds: []string{"dead", "dead", "good"}, want: "s2", order: "s2"},
		4: {kinds: []string{"silent", "good"}, want: "s1", order: "s0 s1"},
		5: {kinds: []string{"auth", "good"}, want: "s1", order: "s0 s1"},
		6: {kinds: []string{"dead", "conflict", "good"}, err: ErrConflict, order: "s1"},
		7: {kinds: []string{"dead", "auth"}, err: ErrAuth, order: "s1"},
		8: {kinds: []string{"dead", "silent"}, err: context.DeadlineExceeded, order: "s1"},
	} {
		t.Run(strings.Join(tc.kinds, ","), func(t *testing.T) {
			log := &dialLog{}
			var addrs []string
			names := map[string]string{}
			// The dead servers' ports are taken last: a port closed
			// before another server listens may be given to it, and the
			// dead server would answer.
			addrs = make([]string, len(tc.kinds))
			for _, dead := range []bool{false, true} {
				for j, k := range tc.kinds {
					if (k == "dead") != dead {
						continue
					}
					s := startListServer(t, log, "s"+string(rune('0'+j)), k)
					addrs[j] = s.addr
					names[s.addr] = s.name
				}
			}
			cfg := testConfig(t)
			cfg.Server = strings.Join(addrs, ", ")
			// The silent server gets its share of the 4 s, not all of it:
			// else the good server after it would time out.
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			s, err := Dial(ctx, cfg, newRecorder())
			if tc.want != "" {
				if err != nil {
					t.Fatalf("%d: Dial: %v", i, err)
				}
				defer func() { s.kill(nil); <-s.Done() }()
				if got := names[s.Server()]; got != tc.want {
					t.Errorf("%d: on %s (%s), want %s", i, got, s.Server(), tc.want)
				}
			} else {
				if err == nil {
					s.kill(nil)
					<-s.Done()
					t.Fatalf("%d: Dial succeeded on %s", i, s.Server())
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("%d: err = %v, want %v", i, err, tc.err)
				}
				if len(addrs) > 1 && !errors.Is(err, ErrConflict) && !strings.Contains(err.Error(), "none of the") {
					t.Errorf("%d: err = %v", i, err)
				}
			}
			if got := log.String(); got != tc.order {
				t.Errorf("%d: connected to %q, want %q", i, got, tc.order)
			}
		})
	}
}

// After a session ends, the next Dial starts from the first server again.
func TestDialStartsFromTheFirst(t *testing.T) {
	log := &dialLog{}
	a := startListServer(t, log, "a", "good")
	b := startListServer(t, log, "b", "good")
	cfg := testConfig(t)
	cfg.Server = a.addr + "," + b.addr
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		s, err := Dial(ctx, cfg, newRecorder())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if s.Server() != a.addr {
			t.Errorf("on %s, want %s", s.Server(), a.addr)
		}
		s.kill(nil)
		<-s.Done()
	}
	if got := log.String(); got != "a a" {
		t.Errorf("connected to %q, want %q", got, "a a")
	}
}
