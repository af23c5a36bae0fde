package presence

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/gateway/config"
	"xmppgw/gateway/internal/testkit"
	"xmppgw/gateway/metrics"
	"xmppgw/stanza"
)

// settings is the presence section a test service reads; tests change it
// as a reload would.
type settings struct {
	mu sync.Mutex
	c  config.PresenceConfig
}

func (s *settings) get() config.PresenceConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

func (s *settings) setStatus(status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Status = status
}

// testService builds a service whose worker does not run: in component
// mode for tDomain with its store in a temporary directory (subscriptions
// mode; PostgreSQL in a schema of its own after useStore(t, "postgres")), or in client mode for bot@example.org/gw. Its events are dropped
// until the test sets emit; its store closes when the test ends. A nil log
// goes to t.Log.
func testService(t *testing.T, mode stanza.Mode, subscriptions string, log *slog.Logger) (*Service, *settings) {
	t.Helper()
	if log == nil {
		log = testkit.Logger(t)
	}
	st := &settings{c: config.PresenceConfig{Subscriptions: subscriptions, Status: tStatus}}
	loc := t.TempDir() + "/p.db"
	if harnessStore == "postgres" && mode == stanza.ModeComponent {
		loc = pgTestSchema(t)
	}
	p, err := New(Options{
		Mode:     mode,
		Domain:   tDomain,
		JID:      "bot@example.org/gw",
		Store:    loc,
		Logger:   log,
		Metrics:  metrics.New(prometheus.NewRegistry()),
		Emit:     func(*stanza.Event) {},
		Session:  func() Writer { return nil },
		Settings: st.get,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, st
}
