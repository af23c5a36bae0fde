package config

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigNewKeys(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.MaxStanzaBytes != 245760 || cfg.AMQP.DeliveryLimit != 20 {
		t.Fatalf("defaults: max_stanza_bytes %d, delivery_limit %d", cfg.Outbound.MaxStanzaBytes, cfg.AMQP.DeliveryLimit)
	}
	cfg, err = Load(writeConfig(t, minimal+"outbound:\n  max_stanza_bytes: 4096\namqp:\n  delivery_limit: 10000\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Outbound.MaxStanzaBytes != 4096 || cfg.AMQP.DeliveryLimit != 10000 {
		t.Fatalf("from the file: %d, %d", cfg.Outbound.MaxStanzaBytes, cfg.AMQP.DeliveryLimit)
	}
	t.Setenv("XMPPGW_OUTBOUND_MAX_STANZA_BYTES", "16777216")
	t.Setenv("XMPPGW_AMQP_DELIVERY_LIMIT", "1")
	cfg, err = Load(writeConfig(t, minimal))
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
		0:  {body: "outbound:\n  max_stanza_bytes: 4095\n", key: "outbound.max_stanza_bytes"},
		1:  {body: "outbound:\n  max_stanza_bytes: 16777217\n", key: "outbound.max_stanza_bytes"},
		2:  {body: "outbound:\n  max_stanza_bytes: -1\n", key: "outbound.max_stanza_bytes"},
		3:  {body: "amqp:\n  delivery_limit: 0\n", key: "amqp.delivery_limit"},
		4:  {body: "amqp:\n  delivery_limit: 10001\n", key: "amqp.delivery_limit"},
		5:  {env: map[string]string{"XMPPGW_AMQP_DELIVERY_LIMIT": "-5"}, key: "amqp.delivery_limit"},
		6:  {env: map[string]string{"XMPPGW_OUTBOUND_MAX_STANZA_BYTES": "12"}, key: "outbound.max_stanza_bytes"},
		7:  {env: map[string]string{"XMPPGW_OUTBOUND_MAX_STANZA_BYTES": "lots"}, key: "max_stanza_bytes"},
		8:  {body: "amqp:\n  delivery_limit: often\n", key: "delivery_limit"},
		9:  {body: "inbound:\n  blocked_wait: -1s\n", key: "inbound.blocked_wait"},
		10: {body: "inbound:\n  blocked_wait: 11m\n", key: "inbound.blocked_wait"},
		11: {env: map[string]string{"XMPPGW_INBOUND_BLOCKED_WAIT": "soon"}, key: "blocked_wait"},
	} {
		t.Run("", func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			p := writeConfig(t, minimal+tc.body)
			_, err := Load(p)
			if err == nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("%d: err = %v", i, err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.key) || !strings.Contains(msg, p) || strings.Contains(msg, "s3cr3t-value") {
				t.Fatalf("%d: error does not name %s and the file (or leaks): %v", i, tc.key, msg)
			}
		})
	}
}

// The live set derived from the table of keys is the one the gateway has
// always reloaded, and every key reaches Unmarshal from its variable.
func TestKeysTable(t *testing.T) {
	want := "amqp.delivery_limit,outbound.default_type,outbound.max_text_bytes,outbound.rate,outbound.max_stanza_bytes," +
		"inbound.routes,inbound.blocked_wait,presence.subscriptions,presence.status,muc.rooms,muc.self_ping,muc.events,log.level"
	if got := strings.Join(LiveKeys(), ","); got != want {
		t.Fatalf("live keys:\n got %s\nwant %s", got, want)
	}
	t.Setenv("XMPPGW_XMPP_TLS_SERVER_NAME", "srv.example.org")
	t.Setenv("XMPPGW_PRESENCE_STATUS", "from env")
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.XMPP.TLSServerName != "srv.example.org" || cfg.Presence.Status != "from env" {
		t.Fatalf("env: %+v", cfg)
	}
	cur, next := *cfg, *cfg
	next.Presence.Status, next.XMPP.Server, next.Log.Level = "new", "127.0.0.1:1", "debug"
	merged, applied, restart := Merge(&cur, &next)
	if merged.Presence.Status != "new" || merged.Log.Level != "debug" || merged.XMPP.Server != cur.XMPP.Server {
		t.Fatalf("merged: %+v", merged)
	}
	if strings.Join(applied, ",") != "presence.status,log.level" || strings.Join(restart, ",") != "xmpp.server" {
		t.Fatalf("applied %v, restart %v", applied, restart)
	}
}
