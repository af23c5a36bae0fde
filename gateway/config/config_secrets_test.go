package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// secretCase places a secret built from a sentinel token somewhere in a
// configuration: in the file, in an environment variable, or both.
type secretCase struct {
	name string
	file string            // YAML; "TOKEN" is replaced by the case's token
	env  map[string]string // same
	ok   bool              // LoadConfig must accept it
}

// secretCases is the table shared by the tests of every output that could
// print a secret. Every token of a case is the same sentinel, so that even a
// fragment of a secret that a parser split at a reserved character is found.
func secretCases() []secretCase {
	const comp = "xmpp:\n  domain: gw.example.org\n  secret: plain-component-secret\n"
	return []secretCase{
		{name: "component secret in file", file: "xmpp:\n  domain: gw.example.org\n  secret: TOKEN\n", ok: true},
		{name: "room password in file", file: comp + "muc:\n  rooms:\n    - jid: ops@conference.example.org\n      password: TOKEN\n", ok: true},
		{name: "room password, room invalid", file: comp + "muc:\n  rooms:\n    - jid: ops@conference.example.org/x\n      password: TOKEN\n"},
		{name: "component secret quoted with specials", file: "xmpp:\n  domain: gw.example.org\n  secret: 'TOKEN @#%zz \"TOKEN'\n", ok: true},
		{name: "component secret from env", file: "xmpp:\n  domain: gw.example.org\n", env: map[string]string{"XMPPGW_XMPP_SECRET": "TOKEN"}, ok: true},
		{name: "client password in file", file: "xmpp:\n  mode: client\n  jid: bot@example.org\n  password: TOKEN\n", ok: true},
		{name: "client password from env", file: "xmpp:\n  mode: client\n  jid: bot@example.org\n", env: map[string]string{"XMPPGW_XMPP_PASSWORD": "TOKEN"}, ok: true},
		{name: "url password in file", file: comp + "amqp:\n  url: amqp://user:TOKEN@127.0.0.1:1/\n", ok: true},
		{name: "url password from env", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@127.0.0.1:1/vh"}, ok: true},
		{name: "url password percent-encoded", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqps://user:TOKEN%40TOKEN%23TOKEN%20TOKEN@127.0.0.1:1/"}, ok: true},
		{name: "url password with %zz", file: comp + "amqp:\n  url: 'amqp://user:TOKEN%zzTOKEN@127.0.0.1:1/'\n"},
		{name: "url password with %zz from env", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN%zzTOKEN@127.0.0.1:1/"}},
		{name: "url password with a space", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN TOKEN@127.0.0.1:1/"}},
		{name: "url password with @", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@TOKEN@127.0.0.1:1/"}, ok: true}, // split at the last @
		{name: "url password with # (parses, wrongly)", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@TOKEN#TOKEN@127.0.0.1:1/"}},
		{name: "url password with #", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN#TOKEN@127.0.0.1:1/"}},
		{name: "url password with /", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN/TOKEN@127.0.0.1:1/"}},
		{name: "url password digits with /", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:12/TOKEN@127.0.0.1:1/"}},
		{name: "url password with ?", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN?TOKEN@127.0.0.1:1/"}},
		{name: "url password with a quote and a backslash", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN\"TOKEN\\TOKEN@127.0.0.1:1/"}},
		{name: "url password with a newline", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN\nTOKEN@127.0.0.1:1/"}},
		{name: "store url password in file", file: comp + "presence:\n  store: postgres://gw:TOKEN@127.0.0.1:5432/xmppgw?sslmode=disable\n", ok: true},
		{name: "store url password from env", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "postgresql://gw:TOKEN@db.example.org/xmppgw"}, ok: true},
		{name: "store url password percent-encoded", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "postgres://gw:TOKEN%40TOKEN%2FTOKEN@127.0.0.1/x"}, ok: true},
		{name: "store url password with %zz", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "postgres://gw:TOKEN%zzTOKEN@127.0.0.1/x"}},
		{name: "store url password with #", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "postgres://gw:TOKEN#TOKEN@127.0.0.1/x"}},
		{name: "store url password with @", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "postgres://gw:TOKEN@TOKEN@127.0.0.1/x"}, ok: true},
		{name: "store url of another scheme", file: comp, env: map[string]string{"XMPPGW_PRESENCE_STORE": "mysql://gw:TOKEN@127.0.0.1/x"}},
		{name: "url without scheme", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "user:TOKEN@127.0.0.1:1"}},
		{name: "url of another scheme", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "http://user:TOKEN@127.0.0.1:1/"}},
		{name: "url with a bad port", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN@127.0.0.1:TOKEN/"}},
		{name: "url list in file", file: comp + "amqp:\n  url: amqp://user:TOKEN@127.0.0.1:1/,amqp://user:TOKEN@127.0.0.2:1/,amqp://127.0.0.3:1/\n", ok: true},
		{name: "url list from env, spaces", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://u:TOKEN@127.0.0.1:1/, amqps://u:TOKEN%40TOKEN%2CTOKEN@127.0.0.1:2/vh"}, ok: true},
		{name: "url list, one with #", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://u:TOKEN@127.0.0.1:1/,amqp://u:TOKEN#TOKEN@127.0.0.1:2/"}},
		{name: "url list, one with %zz", file: comp + "amqp:\n  url: 'amqp://u:TOKEN@127.0.0.1:1/,amqp://u:TOKEN%zzTOKEN@127.0.0.1:2/'\n"},
		{name: "url list, an empty one", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://u:TOKEN@127.0.0.1:1/,,amqp://u:TOKEN@127.0.0.1:2/"}},
		{name: "url password with a comma", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN,TOKEN@127.0.0.1:1/"}},
		{name: "url password with a comma and @", file: comp, env: map[string]string{"XMPPGW_AMQP_URL": "amqp://user:TOKEN,TOKEN@TOKEN@127.0.0.1:1/"}},
		{name: "url as a list", file: comp + "amqp:\n  url: [amqp://user:TOKEN@127.0.0.1:1/]\n"},
		{name: "url as a map", file: comp + "amqp:\n  url: {amqp://user:TOKEN@127.0.0.1:1/: 1}\n"},
		{name: "secret as a list", file: "xmpp:\n  domain: gw.example.org\n  secret: [TOKEN, TOKEN]\n"},
		{name: "secret as a map", file: "xmpp:\n  domain: gw.example.org\n  secret:\n    TOKEN: TOKEN\n"},
		{name: "password as a map", file: "xmpp:\n  mode: client\n  jid: bot@example.org\n  password: {TOKEN: 1}\n"},
		{name: "every secret, other keys invalid", file: "xmpp:\n  domain: gw.example.org\n  secret: TOKEN\n  keepalive: 1ms\n  password: TOKEN\namqp:\n  url: amqp://TOKEN:TOKEN@127.0.0.1:1/\n  prefetch: 0\n"},
		{name: "every secret, client mode invalid", file: "xmpp:\n  mode: client\n  jid: not a jid\n  secret: TOKEN\n  password: TOKEN\n", env: map[string]string{"XMPPGW_AMQP_URL": "amqp://u:TOKEN@127.0.0.1:1/"}},
		{name: "secret in a broken file", file: "xmpp:\n  domain: gw.example.org\n  secret: TOKEN\n   password: TOKEN\n"},
		{name: "secret in a file with a tab", file: "xmpp:\n\tsecret: TOKEN\n"},
		{name: "secret in a duplicate section", file: "xmpp:\n  secret: TOKEN\nxmpp:\n  password: TOKEN\n"},
		{name: "secret line with an unclosed quote", file: "xmpp:\n  domain: gw.example.org\n  secret: \"TOKEN\n"},
	}
}

// token returns the sentinel of case i: letters of both cases so that a
// lower-cased leak (viper lower-cases keys) is found too.
func token(i int) string { return fmt.Sprintf("Qz8SnTl%02dX", i) }

// leaks reports whether s contains the case's sentinel, in any case.
func leaks(s, tok string) bool { return strings.Contains(strings.ToLower(s), strings.ToLower(tok)) }

// setupSecretCase writes the case's file and sets its environment.
func setupSecretCase(t *testing.T, i int, tc secretCase) string {
	t.Helper()
	tok := token(i)
	for k, v := range tc.env {
		t.Setenv(k, strings.ReplaceAll(v, "TOKEN", tok))
	}
	return writeConfig(t, strings.ReplaceAll(tc.file, "TOKEN", tok))
}

func TestSecretsNeverLeak(t *testing.T) {
	for i, tc := range secretCases() {
		t.Run(tc.name, func(t *testing.T) {
			tok := token(i)
			path := setupSecretCase(t, i, tc)
			cfg, err := Load(path)
			if tc.ok != (err == nil) {
				t.Fatalf("%d: LoadConfig: err = %v, want ok = %v", i, err, tc.ok)
			}
			if err != nil {
				if leaks(err.Error(), tok) {
					t.Errorf("%d: LoadConfig error leaks the secret:\n%v", i, err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("%d: LoadConfig error does not name the file: %v", i, err)
				}
				if leaks(fmt.Sprintf("%+v %#v", err, err), tok) {
					t.Errorf("%d: LoadConfig error (%%#v) leaks the secret", i)
				}
				return
			}
			for what, out := range printedConfig(t, cfg) {
				if leaks(out, tok) {
					t.Errorf("%d: %s leaks the secret:\n%s", i, what, out)
				}
			}
			// The same config made invalid: Validate's errors.
			bad := *cfg
			bad.XMPP.Keepalive = 0
			bad.AMQP.Prefetch = 0
			bad.XMPP.Mode = "carrier-pigeon"
			if err := bad.Validate(); err == nil || leaks(err.Error(), tok) {
				t.Errorf("%d: Validate of an invalid config: %v", i, err)
			}
			// Redact removes every secret from any text that quotes one.
			all := strings.Join([]string{cfg.XMPP.Secret, cfg.XMPP.Password, cfg.AMQP.URL, cfg.Presence.Store,
				fmt.Sprintf("%q", cfg.AMQP.URL), fmt.Sprintf("%q", cfg.XMPP.Secret)}, " | ")
			if got := Redact(cfg, "dial "+all+": failed"); leaks(got, tok) || !strings.Contains(got, "failed") {
				t.Errorf("%d: Redact = %q", i, got)
			}
		})
	}
}

// printedConfig returns every way a config can end up in text: fmt verbs,
// slog (text and JSON), JSON, the check-config map.
func printedConfig(t *testing.T, cfg *Config) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for what, v := range map[string]any{
			"*Config": cfg, "Config": *cfg, "XMPPConfig": cfg.XMPP, "*XMPPConfig": &cfg.XMPP,
			"AMQPConfig": cfg.AMQP, "*AMQPConfig": &cfg.AMQP,
		} {
			out[verb+" "+what] = fmt.Sprintf(verb, v)
		}
	}
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewTextHandler(&buf, nil)
		if format == "json" {
			h = slog.NewJSONHandler(&buf, nil)
		}
		slog.New(h).Info("config", "cfg", cfg, "value", *cfg, "xmpp", cfg.XMPP, "amqp", &cfg.AMQP)
		out["slog "+format] = buf.String()
	}
	if b, err := json.Marshal(cfg); err != nil {
		t.Errorf("json.Marshal: %v", err)
	} else {
		out["json"] = string(b)
	}
	if b, err := yaml.Marshal(cfg.Redacted()); err != nil {
		t.Errorf("yaml.Marshal: %v", err)
	} else {
		out["Redacted"] = string(b)
	}
	return out
}

// A panic with a config as its value prints it with String.
func TestConfigPanicRedacted(t *testing.T) {
	cfg, err := Load(writeConfig(t, "xmpp:\n  domain: gw.example.org\n  secret: Qz8PanicSecret\namqp:\n  url: amqp://u:Qz8PanicPass@h/\n"))
	if err != nil {
		t.Fatal(err)
	}
	var _ fmt.Stringer = cfg
	var _ fmt.GoStringer = cfg
	var _ slog.LogValuer = cfg
	var _ json.Marshaler = cfg

	for _, v := range []any{*cfg, cfg.XMPP, cfg.AMQP} {
		s, ok := v.(fmt.Stringer)
		if !ok {
			t.Fatalf("%T is not a Stringer: a panic would print its fields", v)
		}
		if out := s.String(); strings.Contains(out, "Qz8Panic") {
			t.Fatalf("%T.String() = %s", v, out)
		}
	}
	// The printed form still shows what is not secret.
	if s := cfg.String(); !strings.Contains(s, "gw.example.org") || !strings.Contains(s, "amqp://u:xxxxx@h/") || !strings.Contains(s, "<redacted>") {
		t.Fatalf("String() = %s", s)
	}
}

func TestRedact(t *testing.T) {
	cfg := &Config{
		XMPP: XMPPConfig{Secret: "comp-secret-1", Password: "pw"},
		AMQP: AMQPConfig{URL: "amqp://bob:p%40ss%2Fword@rabbit:5672/"},
	}
	for i, tc := range []struct{ in, want string }{
		0: {"nothing secret here", "nothing secret here"},
		1: {"auth comp-secret-1 failed", "auth xxxxx failed"},
		2: {`dial "amqp://bob:p%40ss%2Fword@rabbit:5672/": refused`, `dial "amqp://bob:xxxxx@rabbit:5672/": refused`},
		3: {"password p@ss/word rejected", "password xxxxx rejected"},
		// A secret shorter than 4 bytes is not replaced in free text: it
		// would mangle every message (and is no secret).
		4: {"pw is short", "pw is short"},
	} {
		if got := Redact(cfg, tc.in); got != tc.want {
			t.Errorf("%d: Redact(%q) = %q, want %q", i, tc.in, got, tc.want)
		}
	}
	if got := Redact(nil, "x"); got != "x" {
		t.Errorf("Redact(nil) = %q", got)
	}
}

// presence.store is shown as written when it is a file, with its password
// replaced when it is a postgres:// URL (check-config, logs, Redact).
func TestStoreURLRedacted(t *testing.T) {
	for i, tc := range []struct{ store, shown string }{
		0: {"/var/lib/xmppgw/xmppgw.db", "/var/lib/xmppgw/xmppgw.db"},
		1: {"./data/a:b@c.db", "./data/a:b@c.db"},
		2: {"postgres://gw:Qz8StorePass@db.example.org:5432/xmppgw?sslmode=require", "postgres://gw:xxxxx@db.example.org:5432/xmppgw?sslmode=require"},
		3: {"postgresql://gw@db/xmppgw", "postgresql://gw@db/xmppgw"},
	} {
		cfg, err := Load(writeConfig(t, "xmpp:\n  domain: gw.example.org\n  secret: comp-secret\npresence:\n  store: '"+tc.store+"'\n"))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got := cfg.Redacted()["presence"].(map[string]any)["store"]; got != tc.shown {
			t.Errorf("%d: Redacted store = %q, want %q", i, got, tc.shown)
		}
		if s := cfg.String(); !strings.Contains(s, tc.shown) || strings.Contains(s, "Qz8StorePass") {
			t.Errorf("%d: String() = %s", i, s)
		}
		if got := Redact(cfg, "connect "+tc.store+": refused"); got != "connect "+tc.shown+": refused" {
			t.Errorf("%d: Redact = %q", i, got)
		}
	}
	if _, err := Load(writeConfig(t, "xmpp:\n  domain: gw.example.org\n  secret: comp-secret\npresence:\n  store: 'postgres://gw:Qz8Pass%zz@db/x'\n")); err == nil ||
		!strings.Contains(err.Error(), "presence.store") || strings.Contains(err.Error(), "Qz8Pass") {
		t.Errorf("bad store URL: %v", err)
	}
}
