package component

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"xmppgw/integration/harness"
	"xmppgw/stanza"
)

// Tests against a real Prosody, started once for the package from
// configs/servers (integration/harness) on free loopback ports, with an
// account bot@localhost. They skip, saying why, when Prosody is not
// installed (.ci/setup installs it; CI always has it).

var prosody struct {
	once sync.Once
	p    *harness.Prosody
	dir  string
	err  error
}

// prosodyServer starts the package's Prosody on first use.
func prosodyServer(t *testing.T) *harness.Prosody {
	t.Helper()
	prosody.once.Do(func() {
		if _, err := exec.LookPath("prosody"); err != nil {
			prosody.err = errNoProsody
			return
		}
		prosody.dir, prosody.err = os.MkdirTemp("", "xmppgw-component-prosody-")
		if prosody.err != nil {
			return
		}
		prosody.p, prosody.err = harness.StartProsodyDir(prosody.dir, harness.ProsodyOptions{
			Users: map[string]string{"bot": "botpw"},
		})
	})
	if errors.Is(prosody.err, errNoProsody) {
		t.Skip("prosody is not installed (run .ci/setup)")
	}
	if prosody.err != nil {
		t.Fatalf("starting Prosody: %v", prosody.err)
	}
	return prosody.p
}

var errNoProsody = errors.New("prosody not installed")

// stopProsody stops the package's Prosody, if one was started.
func stopProsody() {
	if prosody.p != nil {
		_ = prosody.p.Close()
	}
	if prosody.dir != "" {
		_ = os.RemoveAll(prosody.dir)
	}
}

func prosodyComponentConfig(t *testing.T) Config {
	p := prosodyServer(t)
	cfg := testConfig(t)
	cfg.Server = p.ComponentAddr
	cfg.Domain = p.ComponentDomain
	cfg.Secret = p.Secret
	return cfg
}

func prosodyClientConfig(t *testing.T) Config {
	p := prosodyServer(t)
	cfg := testConfig(t)
	cfg.Mode = stanza.ModeClient
	cfg.Server = p.C2SAddr
	cfg.JID = p.JID("bot")
	cfg.Password = "botpw"
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
