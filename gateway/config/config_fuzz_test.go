package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Sentinel secrets of the fuzz targets: the environment gives the gateway
// these secrets; no output may contain them.
const (
	fuzzSecret   = "QzFuzzCompSecretA1"
	fuzzPassword = "QzFuzzAcctPasswdB2"
	fuzzURLPass  = "QzFuzzUrlPasswdC3"
)

// FuzzLoadConfig feeds LoadConfig arbitrary YAML, an arbitrary
// XMPPGW_INBOUND_ROUTES, and an amqp.url (from XMPPGW_AMQP_URL) whose
// password holds a sentinel between arbitrary text, user name and host:
// LoadConfig never panics, and neither its error nor any printed form of the
// config it returns contains a secret.
func FuzzLoadConfig(f *testing.F) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "", "guest", "", "127.0.0.1:5672/")
		}
	}
	f.Add([]byte(minimal), "shop=q.shop,support=q.support", "u", "p%40", "h/")
	f.Add([]byte("xmpp:\n  secret: [a]\n"), "x", "u", "#", "h:port/")
	f.Add([]byte("xmpp:\n\tsecret: x\n"), "=", "", " ", "")
	f.Add([]byte("xmpp: {mode: client, jid: a@b}\noutbound: {max_stanza_bytes: 1}\namqp: {delivery_limit: 0}\n"), ",,", "u@", "%zz", "@h")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, routes, user, pass, rest string) {
		for _, s := range []string{string(data), routes, user, pass, rest} {
			l := strings.ToLower(s)
			if strings.Contains(l, "qzfuzz") {
				t.Skip("the input quotes a sentinel")
			}
		}
		noNUL := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
		url := noNUL("amqp://" + user + ":" + pass + fuzzURLPass + pass + "@" + rest)
		t.Setenv("XMPPGW_XMPP_SECRET", fuzzSecret)
		t.Setenv("XMPPGW_XMPP_PASSWORD", fuzzPassword)
		t.Setenv("XMPPGW_AMQP_URL", url)
		t.Setenv("XMPPGW_INBOUND_ROUTES", noNUL(routes))
		path := filepath.Join(dir, "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		leak := func(what, s string) {
			l := strings.ToLower(s)
			for _, secret := range []string{fuzzSecret, fuzzPassword, fuzzURLPass} {
				if strings.Contains(l, strings.ToLower(secret)) {
					t.Fatalf("%s contains a secret (url %q):\n%s", what, url, s)
				}
			}
		}
		if err != nil {
			leak("LoadConfig error", fmt.Sprintf("%v %+v %#v", err, err, err))
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("LoadConfig returned a config that Validate rejects: %v", err)
		}
		b, _ := json.Marshal(cfg)
		var log strings.Builder
		slog.New(slog.NewJSONHandler(&log, nil)).Info("cfg", "cfg", cfg, "amqp", cfg.AMQP)
		leak("printed config", fmt.Sprintf("%v %+v %#v %s %s %v", cfg, cfg, cfg, b, log.String(), cfg.Redacted()))
		leak("Redact", Redact(cfg, url+" "+fmt.Sprintf("%q", url)))
	})
}

// FuzzStringToRoutes: XMPPGW_INBOUND_ROUTES never panics the decoder, and
// what it accepts is trimmed and survives a round trip.
func FuzzStringToRoutes(f *testing.F) {
	for _, s := range []string{"", "shop=q.shop", "shop=q.shop, support = q.support", "a", "=q", "a=", "a=b=c", ",,,", " a = b ,", "é=ü", "a=b,a=c"} {
		f.Add(s)
	}
	from, to := reflect.TypeOf(""), reflect.TypeOf(map[string]string{})
	f.Fuzz(func(t *testing.T, s string) {
		out, err := stringToRoutes(from, to, s)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with a result %v", err, out)
			}
			return
		}
		m, ok := out.(map[string]string)
		if !ok {
			t.Fatalf("result %T", out)
		}
		var pairs []string
		for k, v := range m {
			if k != strings.TrimSpace(k) || v != strings.TrimSpace(v) || strings.Contains(k, ",") || strings.Contains(v, ",") || strings.Contains(k, "=") {
				t.Fatalf("%q: pair %q=%q", s, k, v)
			}
			pairs = append(pairs, k+"="+v)
		}
		again, err := stringToRoutes(from, to, strings.Join(pairs, ","))
		if err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("%q: round trip %v -> %v (%v)", s, out, again, err)
		}
		// Not a string: left alone.
		if got, err := stringToRoutes(reflect.TypeOf(0), to, 5); err != nil || got != 5 {
			t.Fatalf("non-string input: %v %v", got, err)
		}
	})
}
