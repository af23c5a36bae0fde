package gateway

import (
	"os"
	"path/filepath"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\n"

// testGateway builds a gateway (not running) from a whole YAML config, with
// the given dependencies, and closes its store when the test ends.
func testGateway(t *testing.T, body string, deps Deps) *Gateway {
	t.Helper()
	cfg, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.pres.Close)
	return g
}

// quietConfig is minimal with the HTTP listener off and the presence store
// in a temporary directory.
func quietConfig(t *testing.T) string {
	return minimal + "http:\n  listen: \"\"\npresence:\n  store: " + t.TempDir() + "/p.db\n"
}
