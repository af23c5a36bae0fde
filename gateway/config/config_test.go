package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/stanza"
)

// TestConfigsDirectory loads every YAML file shipped in configs/.
func TestConfigsDirectory(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want at least the component and client examples in configs/, got %v", files)
	}
	for i, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("%d: %s: %v", i, f, err)
			}
			if cfg.File != f {
				t.Errorf("%d: File = %q", i, cfg.File)
			}
		})
	}
}

var writeConfig = testkit.WriteConfig

const minimal = testkit.MinimalConfig

func TestConfigDefaults(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.XMPP.Mode != stanza.ModeComponent || cfg.XMPP.Keepalive != 30*time.Second ||
		cfg.AMQP.OutQueue != "xmpp-out" || cfg.AMQP.Prefetch != 1000 ||
		cfg.Outbound.MaxTextBytes != 65536 || cfg.HTTP.Listen != "127.0.0.1:9465" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	t.Setenv("XMPPGW_XMPP_SECRET", "from-env")
	t.Setenv("XMPPGW_AMQP_URL", "amqp://u:p@example.org:5672/v")
	t.Setenv("XMPPGW_AMQP_PREFETCH", "77")
	t.Setenv("XMPPGW_XMPP_KEEPALIVE", "5s")
	t.Setenv("XMPPGW_UNRELATED_THING", "ignored")
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.XMPP.Secret != "from-env" || cfg.AMQP.URL != "amqp://u:p@example.org:5672/v" ||
		cfg.AMQP.Prefetch != 77 || cfg.XMPP.Keepalive != 5*time.Second {
		t.Fatalf("env not applied: %+v", cfg)
	}
}

func TestConfigRoutesFromEnv(t *testing.T) {
	t.Setenv("XMPPGW_INBOUND_ROUTES", "shop=q.shop, support = q.support")
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inbound.Routes) != 2 || cfg.Inbound.Routes["shop"] != "q.shop" || cfg.Inbound.Routes["support"] != "q.support" {
		t.Fatalf("routes = %v", cfg.Inbound.Routes)
	}
	t.Setenv("XMPPGW_INBOUND_ROUTES", "shop")
	if _, err := Load(writeConfig(t, minimal)); err == nil || !strings.Contains(err.Error(), "inbound.routes") {
		t.Fatalf("bad routes: %v", err)
	}
}

func TestConfigInvalid(t *testing.T) {
	for i, tc := range []struct {
		body string
		keys []string // every key that must be named
	}{
		0: {"xmpp:\n  mode: carrier-pigeon\n", []string{"xmpp.mode"}},
		1: {"xmpp:\n  domain: gw.example.org\n", []string{"xmpp.secret"}},
		2: {minimal + "amqp:\n  prefetch: 0\n  queue_type: fancy\n  url: http://x\n",
			[]string{"amqp.prefetch", "amqp.queue_type", "amqp.url"}},
		3: {minimal + "outbound:\n  default_type: shout\n  max_text_bytes: -1\n  rate: -3\n",
			[]string{"outbound.default_type", "outbound.max_text_bytes", "outbound.rate"}},
		4:  {minimal + "log:\n  level: loud\n  format: xml\n", []string{"log.level", "log.format"}},
		5:  {minimal + "inbound:\n  routes:\n    shop: xmpp-out\n", []string{"inbound.routes.shop"}},
		6:  {minimal + "xmpp:\n  keepalive: 10ms\n", nil}, // duplicate section: YAML error
		7:  {"xmpp:\n  mode: client\n  jid: not a jid\n  tls: maybe\n", []string{"xmpp.jid", "xmpp.password", "xmpp.tls"}},
		8:  {minimal + "presence:\n  subscriptions: sometimes\n", []string{"presence.subscriptions"}},
		9:  {minimal + "http:\n  listen: nowhere\n", []string{"http.listen"}},
		10: {minimal + "amqp:\n  in_queue: xmpp-out\n", []string{"amqp.in_queue"}},
		11: {minimal + "xmpp_typo:\n  x: 1\n", []string{"xmpp_typo.x"}},
	} {
		p := writeConfig(t, tc.body)
		_, err := Load(p)
		if err == nil {
			t.Errorf("%d: want an error", i)
			continue
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%d: error does not wrap ErrConfig: %v", i, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, p) {
			t.Errorf("%d: error does not name the file: %v", i, msg)
		}
		for _, k := range tc.keys {
			if !strings.Contains(msg, k) {
				t.Errorf("%d: error does not name %s: %v", i, k, msg)
			}
		}
		if strings.Contains(msg, "s3cr3t-value") {
			t.Errorf("%d: error leaks the secret: %v", i, msg)
		}
	}
}

func TestConfigRedacted(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()
	x := r["xmpp"].(map[string]any)
	if x["secret"] != "<redacted>" || x["password"] != "" || x["domain"] != "gw.example.org" {
		t.Fatalf("redacted xmpp = %v", x)
	}
	if _, ok := r["File"]; ok {
		t.Fatal("File leaked into the printed config")
	}
}

func TestDiffConfig(t *testing.T) {
	a, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Outbound.Rate = 5
	b.XMPP.Server = "127.0.0.1:1"
	got := strings.Join(Diff(a, &b), ",")
	if got != "xmpp.server,outbound.rate" {
		t.Fatalf("diff = %q", got)
	}
}
