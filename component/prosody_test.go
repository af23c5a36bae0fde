package component

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppgw/stanza"
)

// Tests against a running Prosody, only with XMPPGW_TEST_PROSODY=1. The
// server is not started here (the integration package owns that); point the
// test at one with:
//
//	XMPPGW_TEST_PROSODY_COMPONENT  component port (127.0.0.1:5347)
//	XMPPGW_TEST_PROSODY_DOMAIN     component domain (gw.localhost)
//	XMPPGW_TEST_PROSODY_SECRET     component secret (secret)
//	XMPPGW_TEST_PROSODY_C2S        c2s port, plain (127.0.0.1:5222)
//	XMPPGW_TEST_PROSODY_JID        account (bot@localhost)
//	XMPPGW_TEST_PROSODY_PASSWORD   its password (botpw)
func prosodyEnv(t *testing.T, key, def string) string {
	t.Helper()
	if os.Getenv("XMPPGW_TEST_PROSODY") != "1" {
		t.Skip("set XMPPGW_TEST_PROSODY=1 to run against a real Prosody")
	}
	if v := os.Getenv("XMPPGW_TEST_PROSODY_" + key); v != "" {
		return v
	}
	return def
}

func prosodyComponentConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Server = prosodyEnv(t, "COMPONENT", "127.0.0.1:5347")
	cfg.Domain = prosodyEnv(t, "DOMAIN", "gw.localhost")
	cfg.Secret = prosodyEnv(t, "SECRET", "secret")
	return cfg
}

func prosodyClientConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Mode = stanza.ModeClient
	cfg.Server = prosodyEnv(t, "C2S", "127.0.0.1:5222")
	cfg.JID = prosodyEnv(t, "JID", "bot@localhost")
	cfg.Password = prosodyEnv(t, "PASSWORD", "botpw")
	cfg.TLS = "disabled"
	return cfg
}

// logConn logs what the server sends, to see how it answers barriers.
type logConn struct {
	net.Conn
	t *testing.T
}

func (c logConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.Logf("server: %s", p[:n])
	}
	return n, err
}

func dialLogged(t *testing.T, cfg Config, in Inbound) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := net.Dial("tcp", cfg.Server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := open(ctx, cfg, in, logConn{c, t})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func waitConfirmed(t *testing.T, s *Session, seq uint64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for s.Confirmed() < seq {
		select {
		case <-s.Notify():
		case <-s.Done():
			t.Fatalf("session died: %v", s.Err())
		case <-deadline:
			t.Fatalf("barrier %d not confirmed (Confirmed %d)", seq, s.Confirmed())
		}
	}
}

// TestProsodyBarrier checks that a ping from the component's domain to itself
// comes back over the same stream (Prosody routes it to the component).
func TestProsodyBarrier(t *testing.T) {
	cfg := prosodyComponentConfig(t)
	var rtts []time.Duration
	var mu sync.Mutex
	cfg.OnBarrier = func(d time.Duration) { mu.Lock(); rtts = append(rtts, d); mu.Unlock() }
	s := dialLogged(t, cfg, newRecorder())
	var last uint64
	for range 3 {
		seq, err := s.WriteWithBarrier(nil)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
	}
	waitConfirmed(t, s, last)
	mu.Lock()
	t.Logf("barrier round trips: %v", rtts)
	mu.Unlock()
}

func TestProsodyHandshakeErrors(t *testing.T) {
	cfg := prosodyComponentConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	bad := cfg
	bad.Secret = "definitely-wrong"
	if s, err := Dial(ctx, bad, newRecorder()); !errors.Is(err, ErrAuth) {
		if s != nil {
			s.kill(nil)
			<-s.Done()
		}
		t.Errorf("wrong secret: %v, want ErrAuth", err)
	} else {
		t.Logf("wrong secret: %v", err)
	}

	unknown := cfg
	unknown.Domain = "nope." + cfg.Domain
	if s, err := Dial(ctx, unknown, newRecorder()); !errors.Is(err, ErrHostUnknown) {
		if s != nil {
			s.kill(nil)
			<-s.Done()
		}
		t.Errorf("unknown domain: %v, want ErrHostUnknown", err)
	} else {
		t.Logf("unknown domain: %v", err)
	}
}

func TestProsodyClientAndComponent(t *testing.T) {
	ccfg := prosodyClientConfig(t)
	comp := newRecorder()
	cs := dialLogged(t, prosodyComponentConfig(t), comp)
	bot := newRecorder()
	bs := dialLogged(t, ccfg, bot)
	t.Logf("client bound %s", bs.Addr())

	seq, err := bs.WriteWithBarrier([]byte(`<message to='notices@` + cs.Addr().String() + `' id='c1' type='chat'><body>to the gateway</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, bs, seq)

	seq, err = cs.WriteWithBarrier([]byte(`<message from='notices@` + cs.Addr().String() + `' to='` + bs.Addr().Bare().String() + `' id='g1' type='chat'><body>from the gateway</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, cs, seq)

	for _, r := range []*recorder{comp, bot} {
		waitFor(t, "message delivery", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return len(r.msgs) > 0
		})
	}
	comp.mu.Lock()
	if m := comp.msgs[0]; m.Text != "to the gateway" || !strings.HasPrefix(m.From, bs.Addr().Bare().String()) {
		t.Errorf("component got %+v", m)
	}
	comp.mu.Unlock()
	bot.mu.Lock()
	if m := bot.msgs[0]; m.Text != "from the gateway" || m.ID != "g1" {
		t.Errorf("client got %+v", m)
	}
	bot.mu.Unlock()
}

func TestProsodyClientAuth(t *testing.T) {
	cfg := prosodyClientConfig(t)
	cfg.Password = "definitely-wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Dial(ctx, cfg, newRecorder())
	if !errors.Is(err, ErrAuth) {
		if s != nil {
			s.kill(nil)
			<-s.Done()
		}
		t.Fatalf("wrong password: %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("error leaks the password: %v", err)
	}
	t.Logf("wrong password: %v", err)
}
