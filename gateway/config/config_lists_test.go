package config

import (
	"strings"
	"testing"
)

// xmpp.server and amqp.url take lists separated by commas: every element is
// checked (the error names the key and which element), and check-config
// shows every URL of a list with its password redacted.
func TestServerAndURLLists(t *testing.T) {
	const comp = "xmpp:\n  domain: gw.example.org\n  secret: comp-secret\n"
	for i, tc := range []struct {
		yaml string
		ok   bool
		want []string // in the error, or in check-config's map
	}{
		0: {comp + "  server: 127.0.0.1:5347,127.0.0.1:5348\n", true, []string{"127.0.0.1:5347,127.0.0.1:5348"}},
		1: {comp + "  server: 'xmpp1.example.org:5347, [::1]:5347'\n", true, []string{"xmpp1.example.org:5347, [::1]:5347"}},
		2: {comp + "  server: 127.0.0.1:5347,127.0.0.1\n", false, []string{"xmpp.server", "server 2 of 2", `"127.0.0.1" is not host:port`}},
		3: {comp + "  server: 127.0.0.1:5347,\n", false, []string{"xmpp.server", "server 2 of 2"}},
		4: {comp + "  server: '127.0.0.1:'\n", false, []string{"xmpp.server", "is not host:port"}},
		5: {comp + "amqp:\n  url: amqp://u:Pass1@a:1/,amqp://u:Pass2@b:2/vh\n", true, []string{"amqp://u:xxxxx@a:1/,amqp://u:xxxxx@b:2/vh"}},
		6: {comp + "amqp:\n  url: amqp://u:Pass1@a:1/,http://u:Pass2@b:2/\n", false, []string{"amqp.url", "URL 2 of 2", "amqp://"}},
		7: {comp + "amqp:\n  url: amqp://u:Pass1@a:1/,\n", false, []string{"amqp.url", "URL 2 of 2 is empty"}},
		8: {comp + "amqp:\n  url: amqp://u:Pa,ss1@a:1/\n", false, []string{"amqp.url", "URL 1 of 2", "comma %2C"}},
	} {
		cfg, err := Load(writeConfig(t, tc.yaml))
		if tc.ok != (err == nil) {
			t.Fatalf("%d: Load = %v, want ok %v", i, err, tc.ok)
		}
		var got string
		if err != nil {
			got = err.Error()
		} else {
			m := cfg.Redacted()
			got = m["xmpp"].(map[string]any)["server"].(string) + " " + m["amqp"].(map[string]any)["url"].(string)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%d: %q does not contain %q", i, got, w)
			}
		}
		if strings.Contains(got, "Pass1") || strings.Contains(got, "Pass2") || strings.Contains(got, "ss1") {
			t.Errorf("%d: %q shows a password", i, got)
		}
	}
}

// Redact hides the password of every URL of a list, whether a text quotes
// the list or one of its URLs.
func TestRedactURLList(t *testing.T) {
	cfg, err := Load(writeConfig(t, "xmpp:\n  domain: gw.example.org\n  secret: comp-secret\namqp:\n  url: 'amqp://u:Qz8One@a:1/, amqp://u:Qz8Two%2C@b:2/'\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{
		"dial amqp://u:Qz8One@a:1/, amqp://u:Qz8Two%2C@b:2/: refused",
		"dial amqp://u:Qz8Two%2C@b:2/: refused",
		"dial amqp://u:Qz8One@a:1/: refused",
		`password "Qz8Two," refused`,
	} {
		got := Redact(cfg, s)
		if strings.Contains(got, "Qz8") || !strings.Contains(got, "refused") {
			t.Errorf("%d: Redact(%q) = %q", i, s, got)
		}
	}
	if got := Redact(cfg, "dial amqp://u:Qz8Two%2C@b:2/: refused"); got != "dial amqp://u:xxxxx@b:2/: refused" {
		t.Errorf("Redact of one URL of the list = %q", got)
	}
}
