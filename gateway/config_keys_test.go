package gateway

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestConfigNewKeys(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.MaxStanzaBytes != 245760 || cfg.AMQP.DeliveryLimit != 20 {
		t.Fatalf("defaults: max_stanza_bytes %d, delivery_limit %d", cfg.Outbound.MaxStanzaBytes, cfg.AMQP.DeliveryLimit)
	}
	cfg, err = LoadConfig(writeConfig(t, minimal+"outbound:\n  max_stanza_bytes: 4096\namqp:\n  delivery_limit: 10000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.MaxStanzaBytes != 4096 || cfg.AMQP.DeliveryLimit != 10000 {
		t.Fatalf("from the file: %d, %d", cfg.Outbound.MaxStanzaBytes, cfg.AMQP.DeliveryLimit)
	}
	t.Setenv("XMPPGW_OUTBOUND_MAX_STANZA_BYTES", "16777216")
	t.Setenv("XMPPGW_AMQP_DELIVERY_LIMIT", "1")
	cfg, err = LoadConfig(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.MaxStanzaBytes != 16<<20 || cfg.AMQP.DeliveryLimit != 1 {
		t.Fatalf("from the environment: %d, %d", cfg.Outbound.MaxStanzaBytes, cfg.AMQP.DeliveryLimit)
	}
	r := cfg.Redacted()
	if r["outbound"].(map[string]any)["max_stanza_bytes"] != 16<<20 || r["amqp"].(map[string]any)["delivery_limit"] != 1 {
		t.Fatalf("check-config map: %v", r)
	}
}

func TestConfigNewKeysInvalid(t *testing.T) {
	for i, tc := range []struct {
		body string
		env  map[string]string
		key  string
	}{
		0: {body: "outbound:\n  max_stanza_bytes: 4095\n", key: "outbound.max_stanza_bytes"},
		1: {body: "outbound:\n  max_stanza_bytes: 16777217\n", key: "outbound.max_stanza_bytes"},
		2: {body: "outbound:\n  max_stanza_bytes: -1\n", key: "outbound.max_stanza_bytes"},
		3: {body: "amqp:\n  delivery_limit: 0\n", key: "amqp.delivery_limit"},
		4: {body: "amqp:\n  delivery_limit: 10001\n", key: "amqp.delivery_limit"},
		5: {env: map[string]string{"XMPPGW_AMQP_DELIVERY_LIMIT": "-5"}, key: "amqp.delivery_limit"},
		6: {env: map[string]string{"XMPPGW_OUTBOUND_MAX_STANZA_BYTES": "12"}, key: "outbound.max_stanza_bytes"},
		7: {env: map[string]string{"XMPPGW_OUTBOUND_MAX_STANZA_BYTES": "lots"}, key: "max_stanza_bytes"},
		8: {body: "amqp:\n  delivery_limit: often\n", key: "delivery_limit"},
	} {
		t.Run("", func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			p := writeConfig(t, minimal+tc.body)
			_, err := LoadConfig(p)
			if err == nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("%d: err = %v", i, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.key) || !strings.Contains(msg, p) || strings.Contains(msg, "s3cr3t-value") {
				t.Fatalf("%d: error does not name %s and the file (or leaks): %v", i, tc.key, msg)
			}
		})
	}
}

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
