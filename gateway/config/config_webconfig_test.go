package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bcrypt hash (cost 4) of "a password", as in basic_auth_users.
const testHash = "$2a$04$bOiWyCDnRa9rQZuaTSVSLOZct95dXi6uZuKXB43Zu1TJKs08IY0sa"

// writeWeb writes a web configuration file into a temporary directory.
func writeWeb(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebConfigKey(t *testing.T) {
	cfg, err := Load(writeConfig(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.WebConfig != "" {
		t.Fatalf("default: %q", cfg.HTTP.WebConfig)
	}
	web := writeWeb(t, "basic_auth_users:\n  prometheus: "+testHash+"\n")
	cfg, err = Load(writeConfig(t, minimal+"http:\n  web_config: "+web+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.WebConfig != web {
		t.Fatalf("from the file: %q", cfg.HTTP.WebConfig)
	}
	if got := cfg.Redacted()["http"].(map[string]any)["web_config"]; got != web {
		t.Fatalf("check-config shows %v", got)
	}
	env := writeWeb(t, "")
	t.Setenv("XMPPGW_HTTP_WEB_CONFIG", env)
	if cfg, err = Load(writeConfig(t, minimal)); err != nil || cfg.HTTP.WebConfig != env {
		t.Fatalf("from the environment: %v, %v", cfg, err)
	}
	// Which file is read is fixed at start (the listener is made then).
	next := *cfg
	next.HTTP.WebConfig = web
	if _, applied, restart := Merge(cfg, &next); len(applied) != 0 || strings.Join(restart, ",") != "http.web_config" {
		t.Fatalf("reload: applied %v, restart %v", applied, restart)
	}
}

// A web configuration that exporter-toolkit would not serve is a config
// error naming the key, the web configuration file and the config file,
// and never quoting a password written in it by mistake.
func TestWebConfigInvalid(t *testing.T) {
	const plain = "hunter2-plaintext"
	for i, tc := range []struct {
		web  string // body of the web config ("-": no file)
		want string // in the error
	}{
		0: {web: "-", want: "no such file"},
		1: {web: "basic_auth_users: [\n", want: "yaml"},
		2: {web: "basic_auth_user:\n  prometheus: " + testHash + "\n", want: "basic_auth_user"}, // typo: unknown field
		3: {web: "basic_auth_users:\n  prometheus: " + plain + "\n", want: "bcrypt"},            // a password, not its hash
		4: {web: "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", want: "missing.crt"},
		5: {web: "tls_server_config:\n  key_file: server.key\n", want: "cert"},
		6: {web: "http_server_config:\n  headers:\n    X-Powered-By: xmppgw\n", want: "X-Powered-By"},
	} {
		t.Run("", func(t *testing.T) {
			web := filepath.Join(t.TempDir(), "web.yml")
			if tc.web != "-" {
				web = writeWeb(t, tc.web)
			}
			p := writeConfig(t, minimal+"http:\n  web_config: "+web+"\n")
			_, err := Load(p)
			if err == nil || !errors.Is(err, ErrConfig) {
				t.Fatalf("%d: err = %v", i, err)
			}
			msg := err.Error()
			for _, w := range []string{"http.web_config", web, p, tc.want} {
				if !strings.Contains(msg, w) {
					t.Errorf("%d: error does not say %q: %s", i, w, msg)
				}
			}
			if strings.Contains(msg, plain) || strings.Count(msg, web) != 1 {
				t.Errorf("%d: %s", i, msg)
			}
		})
	}
}
