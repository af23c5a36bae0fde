package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// Both new keys apply on SIGHUP without a restart.
func TestReloadNewKeysLive(t *testing.T) {
	var logs bytes.Buffer
	body := quietConfig(t)
	g := testGateway(t, body, Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	next, err := LoadConfig(writeConfig(t, body+"outbound:\n  max_stanza_bytes: 65536\namqp:\n  delivery_limit: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	g.Reload(next)
	cur := g.cfg.Load()
	if cur.Outbound.MaxStanzaBytes != 65536 || cur.AMQP.DeliveryLimit != 3 {
		t.Fatalf("after reload: max_stanza_bytes %d, delivery_limit %d", cur.Outbound.MaxStanzaBytes, cur.AMQP.DeliveryLimit)
	}
	if strings.Contains(logs.String(), "need a restart") {
		t.Fatalf("reload asked for a restart:\n%s", logs.String())
	}
	for _, k := range []string{"outbound.max_stanza_bytes", "amqp.delivery_limit"} {
		if !strings.Contains(logs.String(), k) {
			t.Errorf("the reload log does not name %s:\n%s", k, logs.String())
		}
	}
}
